package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/config"
)

// configRefs locates the configuration schema's definitions inside values.schema.json.
const configRefs = "#/properties/config/definitions/"

// spliceConfigSchema replaces the value of the top-level properties.config in a chart
// schema with config.JSONSchema, leaving every other byte as it is (the hand-written rest
// of the file keeps its order and layout).
func spliceConfigSchema(doc []byte) ([]byte, error) {
	start, end, err := configValueSpan(doc)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ")
	if err := enc.Encode(config.JSONSchema(configRefs)); err != nil {
		return nil, err
	}
	out := append([]byte{}, doc[:start]...)
	out = append(out, bytes.TrimRight(b.Bytes(), "\n")...)
	return append(out, doc[end:]...), nil
}

// configValueSpan finds the byte range of the value of the top-level "properties" →
// "config" key.
func configValueSpan(doc []byte) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	depth, inProps := 0, false
	expectKey := func() bool { return depth == 1 || (inProps && depth == 2) }
	for {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, errors.New("no properties.config object")
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
				if depth == 1 {
					inProps = false
				}
			}
			continue
		case string:
			if !expectKey() {
				continue
			}
			if depth == 1 && v == "properties" {
				if t, _ := dec.Token(); t != json.Delim('{') {
					return 0, 0, errors.New("properties is not an object")
				}
				depth, inProps = 2, true
				continue
			}
			if inProps && v == "config" {
				return valueAfter(doc, int(dec.InputOffset()))
			}
			if err := skipValue(dec); err != nil {
				return 0, 0, err
			}
		}
	}
}

// valueAfter returns the span of the JSON value that follows the ':' at or after off.
func valueAfter(doc []byte, off int) (int, int, error) {
	i := bytes.IndexByte(doc[off:], ':')
	if i < 0 {
		return 0, 0, errors.New("no value after config")
	}
	start := off + i + 1
	for start < len(doc) && (doc[start] == ' ' || doc[start] == '\n' || doc[start] == '\t' || doc[start] == '\r') {
		start++
	}
	dec := json.NewDecoder(bytes.NewReader(doc[start:]))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return 0, 0, fmt.Errorf("config value: %w", err)
	}
	return start, start + int(dec.InputOffset()), nil
}

// skipValue consumes the value of the key just read.
func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}
