package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Payload is an endpoint's request-body rule (step 7).
type Payload struct {
	MaxBytes int64              // 0: no size limit
	Schema   *jsonschema.Schema // nil: the body is not validated
}

// check applies the rule. Messages name fields the schema declares, never a request
// value or a key the client chose.
func (p *Payload) check(in *Input) (Code, string) {
	if p.MaxBytes > 0 && (in.BodySize > p.MaxBytes || int64(len(in.Body)) > p.MaxBytes) {
		return PayloadTooLarge, fmt.Sprintf("Request body exceeds the limit of %d bytes", p.MaxBytes)
	}
	if in.BodyPartial && (p.MaxBytes > 0 || p.Schema != nil) {
		// Envoy cut the body at its buffer limit: what it sent may be under the limit
		// (and validate) while the body the upstream reads in full is not.
		return PayloadTooLarge, "Request body was truncated before it could be checked"
	}
	if p.Schema == nil {
		return "", ""
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
	field := declaredField(ve.SchemaURL)
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

// declaredField names the field a schema location is about with the property names the
// schema declares on the way ("user.email" for #/properties/user/properties/email). It
// reads the schema's location, not the instance's: a key the client chose (matched by
// additionalProperties or patternProperties) never appears. Empty when the location
// declares no property name.
func declaredField(schemaURL string) string {
	_, frag, ok := strings.Cut(schemaURL, "#")
	if !ok {
		return ""
	}
	toks := strings.Split(frag, "/")
	var names []string
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "properties":
			if i+1 < len(toks) {
				i++
				names = append(names, unescapePointer(toks[i]))
			}
		case "patternProperties", "dependentSchemas", "$defs", "definitions":
			i++ // the next token is a pattern or a definition's name, not a field
		}
	}
	return strings.Join(names, ".")
}

// unescapePointer decodes one JSON-pointer token (RFC 6901), as it appears percent-encoded
// in a schema URL's fragment.
func unescapePointer(t string) string {
	if u, err := url.PathUnescape(t); err == nil {
		t = u
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
}
