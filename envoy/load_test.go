package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Every type a typed_config in these files names must be linked in, or protojson cannot
	// resolve its "@type" and the test fails: that is the point.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// yamlDocs splits a YAML file into its documents, each converted to JSON. yaml.v3 rejects
// duplicate keys, so a key written twice is an error rather than a silent override.
func yamlDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs [][]byte
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, b)
	}
	return docs
}

// strictProto fills m from JSON: unknown fields and unknown "@type"s are errors.
func strictProto(b []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{}.Unmarshal(b, m)
}

// valueProto fills m from a decoded YAML value (an EnvoyFilter or EnvoyPatchPolicy patch).
func valueProto(v any, m proto.Message) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return strictProto(b, m)
}

type validator interface{ ValidateAll() error }

// validateDeep runs m's ValidateAll and, because generated validators stop at
// google.protobuf.Any, unpacks every Any below m and validates what it holds, recursively.
// All violations are joined, each prefixed by where it was found.
func validateDeep(m proto.Message) error {
	var errs []error
	validateRoot(m, string(m.ProtoReflect().Descriptor().FullName()), &errs)
	return errors.Join(errs...)
}

func validateRoot(m proto.Message, at string, errs *[]error) {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", at, err))
		}
	}
	walkAnys(m.ProtoReflect(), at, func(inner proto.Message, at string) { validateRoot(inner, at, errs) }, errs)
}

// validatePartial checks a fragment that Istio merges into generated config (patch operation
// MERGE): its own required fields may be missing, but every sub-message it sets must be valid
// on its own. Any fields are fragments too.
func validatePartial(m proto.Message) error {
	var errs []error
	validateFragment(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().FullName()), &errs)
	return errors.Join(errs...)
}

func validateFragment(m protoreflect.Message, at string, errs *[]error) {
	forEachMessage(m, at, func(sub protoreflect.Message, at string) {
		if a, ok := sub.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", at, err))
				return
			}
			validateFragment(inner.ProtoReflect(), at+"("+a.GetTypeUrl()+")", errs)
			return
		}
		validateRoot(sub.Interface(), at, errs)
	})
}

// walkAnys calls fn for the message inside every Any below m (not inside those Anys: fn
// decides whether to go on).
func walkAnys(m protoreflect.Message, at string, fn func(proto.Message, string), errs *[]error) {
	forEachMessage(m, at, func(sub protoreflect.Message, at string) {
		a, ok := sub.Interface().(*anypb.Any)
		if !ok {
			walkAnys(sub, at, fn, errs)
			return
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", at, err))
			return
		}
		fn(inner, at+"("+a.GetTypeUrl()+")")
	})
}

// forEachMessage calls fn for every populated message-typed value directly in m: singular
// fields, list elements and map values.
func forEachMessage(m protoreflect.Message, at string, fn func(protoreflect.Message, string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := at + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				fn(l.Get(i).Message(), fmt.Sprintf("%s[%d]", name, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				fn(mv.Message(), fmt.Sprintf("%s[%s]", name, k.String()))
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			fn(v.Message(), name)
		}
		return true
	})
}

// strictYAML decodes one JSON document into a Go mirror of a CRD type: fields the mirror
// does not declare are errors.
func strictYAML(b []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(out)
}

// kindOf reads apiVersion and kind of one document.
func kindOf(t *testing.T, b []byte) (apiVersion, kind string) {
	t.Helper()
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(b, &tm); err != nil {
		t.Fatal(err)
	}
	return tm.APIVersion, tm.Kind
}

// typeMeta and objectMeta mirror the Kubernetes fields these resources use.
type typeMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (o objectMeta) check() error {
	if o.Name == "" || o.Namespace == "" {
		return fmt.Errorf("metadata needs name and namespace, got %+v", o)
	}
	return nil
}
