package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Payload is an endpoint's request-body rule (step 7).
type Payload struct {
	MaxBytes int64              // 0: no size limit
	Schema   *jsonschema.Schema // nil: the body is not validated
}

// check applies the rule. Messages name schema fields only, never request values.
func (p *Payload) check(in *Input) (Code, string) {
	if p.MaxBytes > 0 && (in.BodySize > p.MaxBytes || int64(len(in.Body)) > p.MaxBytes) {
		return PayloadTooLarge, fmt.Sprintf("Request body exceeds the limit of %d bytes", p.MaxBytes)
	}
	if p.Schema == nil {
		return "", ""
	}
	if in.BodyPartial {
		// Envoy cut the body at its buffer limit: validating a prefix would pass what
		// the upstream then reads in full.
		return PayloadTooLarge, "Request body was truncated before it could be validated"
	}
	if len(in.Body) == 0 && in.BodySize > 0 {
		return ValidationError, "Request body was not forwarded for validation"
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(in.Body))
	if err != nil {
		return InvalidJSON, "Request body is not valid JSON"
	}
	err = p.Schema.Validate(doc)
	if err == nil {
		return "", ""
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return ValidationError, "Request body validation failed"
	}
	return classify(ve)
}

// classify maps the first leaf of a schema violation to a catalogue code.
func classify(ve *jsonschema.ValidationError) (Code, string) {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	field := strings.Join(ve.InstanceLocation, ".")
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		name := strings.Join(k.Missing, ", ")
		if field != "" {
			name = field + "." + name
		}
		return MissingField, "Missing required field: " + name
	case *kind.Type, *kind.Enum, *kind.Const, *kind.Format, *kind.Pattern, *kind.MinLength, *kind.MaxLength,
		*kind.Minimum, *kind.Maximum, *kind.ExclusiveMinimum, *kind.ExclusiveMaximum, *kind.MultipleOf,
		*kind.MinItems, *kind.MaxItems, *kind.UniqueItems:
		if field == "" {
			return ValidationError, "Request body validation failed"
		}
		return InvalidField, "Field has an invalid value: " + field
	}
	return ValidationError, "Request body validation failed"
}
