package login

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Why an account identifier could not be read from a login request. Each is a client
// error; none says what the client sent.
var (
	// ErrMissing: the field or header is absent, or empty once normalised.
	ErrMissing = errors.New("login: account identifier missing")
	// ErrNotJSON: the body is not one JSON value.
	ErrNotJSON = errors.New("login: body is not JSON")
	// ErrAmbiguous: the field or header appears more than once (keys compared without
	// case): the upstream might read another copy than the one counted.
	ErrAmbiguous = errors.New("login: account identifier given more than once")
	// ErrNotString: the field is not a JSON string.
	ErrNotString = errors.New("login: account identifier is not a string")
	// ErrTooDeep: the body nests deeper than MaxDepth.
	ErrTooDeep = errors.New("login: body nests too deep")
	// ErrTooLarge: the body or identifier is larger than allowed.
	ErrTooLarge = errors.New("login: body or account identifier too large")
)

// Bounds of what is read from a login request.
const (
	MaxDepth   = 32
	MaxAccount = 512 // bytes of an identifier, before normalising
)

// FromJSON returns the string at path (object keys, outermost first) in the JSON body.
// Every object on the path is read whole: a key that matches a path segment without
// regard to case more than once anywhere on the path is ErrAmbiguous, so that a
// duplicate key cannot make Gatehouse count one account while the upstream logs in
// another, whichever copy and case its JSON reader takes.
func FromJSON(body []byte, path []string) (string, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	v, found, err := walk(d, path, 0)
	if err != nil {
		return "", err
	}
	if _, err := d.Token(); err != io.EOF {
		return "", ErrNotJSON
	}
	if !found {
		return "", ErrMissing
	}
	return v, nil
}

// walk reads one JSON value from d; when path is not empty and the value is an object,
// it looks for path[0] in it and below.
func walk(d *json.Decoder, path []string, depth int) (string, bool, error) {
	if depth >= MaxDepth {
		return "", false, ErrTooDeep
	}
	t, err := d.Token()
	if err != nil {
		return "", false, ErrNotJSON
	}
	delim, isDelim := t.(json.Delim)
	if len(path) == 0 {
		if s, ok := t.(string); ok {
			return s, true, nil
		}
		if isDelim {
			if err := skip(d, delim, depth+1); err != nil {
				return "", false, err
			}
		}
		return "", false, ErrNotString
	}
	if !isDelim {
		return "", false, nil
	}
	if delim != '{' {
		return "", false, skip(d, delim, depth+1)
	}
	return object(d, path, depth+1)
}

// object reads the rest of an object whose '{' was read, looking for path[0].
func object(d *json.Decoder, path []string, depth int) (string, bool, error) {
	var v string
	var found, seen bool
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return "", false, ErrNotJSON
		}
		k, _ := t.(string)
		if !strings.EqualFold(k, path[0]) {
			if err := skipValue(d, depth); err != nil {
				return "", false, err
			}
			continue
		}
		if seen {
			return "", false, ErrAmbiguous
		}
		seen = true
		if v, found, err = walk(d, path[1:], depth); err != nil {
			return "", false, err
		}
	}
	if _, err := d.Token(); err != nil { // '}'
		return "", false, ErrNotJSON
	}
	return v, found, nil
}

// skipValue reads one value and drops it.
func skipValue(d *json.Decoder, depth int) error {
	t, err := d.Token()
	if err != nil {
		return ErrNotJSON
	}
	if delim, ok := t.(json.Delim); ok {
		return skip(d, delim, depth+1)
	}
	return nil
}

// skip reads the rest of an object or array whose opening delim was read.
func skip(d *json.Decoder, delim json.Delim, depth int) error {
	if delim != '{' && delim != '[' {
		return ErrNotJSON
	}
	if depth > MaxDepth {
		return ErrTooDeep
	}
	for d.More() {
		if delim == '{' {
			if _, err := d.Token(); err != nil { // the key
				return ErrNotJSON
			}
		}
		if err := skipValue(d, depth); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil {
		return ErrNotJSON
	}
	return nil
}

var fold = cases.Fold()

// Normalize returns the form of an account identifier that is counted: Unicode NFKC
// (full-width and compatibility letters become their plain forms), case folded,
// combining marks (accents) and format characters (zero-width spaces and joiners, soft
// hyphens, direction marks) removed, leading and trailing white space trimmed. Two
// spellings an upstream might take for one account (Alice@Example.com,
// " alice@example.com", "ａｌｉｃｅ@example.com", and "vīctim@example.com" for
// "victim@example.com" in an accent-insensitive collation such as MySQL's default) count
// as one; the cost is that spellings the upstream tells apart count together too, which
// only makes the lockout stricter.
func Normalize(s string) string {
	s = norm.NFKD.String(fold.String(norm.NFKC.String(s)))
	s = strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cf, unicode.Mn) {
			return -1
		}
		return r
	}, s)
	return norm.NFKC.String(strings.TrimSpace(s))
}

// Key returns the lockout key of an account of app: "account:" and the hex SHA-256 of
// the app and the normalised identifier, length-prefixed. The identifier is never
// stored in clear.
func Key(app, account string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range []string{app, account} {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return "account:" + hex.EncodeToString(h.Sum(sum[:0]))
}
