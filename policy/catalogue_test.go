package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// The tables below are transcribed from the contract documents (the four published error references), independently
// of catalogue_table.go: they are what a client was promised.

// seedRow is one row of a seed document's error table.
type seedRow struct {
	code   string
	status int
	text   string // 000: the description (the default message); 003: the title
}

// seed000 is every table of 000_*.txt (ProtectMyAPI).
var seed000 = []seedRow{
	// Authentication Errors
	{"UNAUTHORIZED", 401, "Missing or invalid authentication"},
	{"TOKEN_EXPIRED", 401, "JWT token has expired"},
	{"INVALID_TOKEN", 401, "Malformed or invalid token"},
	{"FORBIDDEN", 403, "Valid auth but insufficient permissions"},
	// Attestation Errors
	{"ATTESTATION_FAILED", 403, "Device attestation verification failed"},
	{"ATTESTATION_REQUIRED", 403, "Request missing attestation header"},
	{"INVALID_ATTESTATION", 403, "Attestation data is malformed"},
	{"ATTESTATION_EXPIRED", 403, "Attestation has expired"},
	{"DEVICE_COMPROMISED", 403, "Device is jailbroken/rooted"},
	{"EMULATOR_DETECTED", 403, "Running on simulator/emulator"},
	{"DEBUGGER_DETECTED", 403, "Debugger is attached"},
	{"APP_TAMPERED", 403, "App binary has been modified"},
	// App & Endpoint Errors
	{"APP_NOT_FOUND", 404, "App ID doesn’t exist"},
	{"APP_DISABLED", 403, "App has been disabled"},
	{"ENDPOINT_NOT_FOUND", 404, "Endpoint slug doesn’t exist"},
	{"ENDPOINT_DISABLED", 403, "Endpoint has been disabled"},
	{"ENDPOINT_NOT_LINKED", 403, "Endpoint not linked to app"},
	{"INVALID_METHOD", 405, "HTTP method not allowed"},
	// Secret Errors
	{"SECRET_NOT_FOUND", 404, "Secret doesn’t exist"},
	{"SECRET_EXPIRED", 403, "Secret has expired"},
	{"SECRET_DECRYPTION_FAILED", 500, "Unable to decrypt secret"},
	// Rate Limiting Errors
	{"RATE_LIMITED", 429, "Too many requests"},
	{"QUOTA_EXCEEDED", 429, "Monthly quota exceeded"},
	{"DEVICE_RATE_LIMITED", 429, "Too many requests from this device"},
	// Proxy Errors
	{"PROXY_ERROR", 502, "Error forwarding to target API"},
	{"TARGET_TIMEOUT", 504, "Target API didn’t respond in time"},
	{"TARGET_UNAVAILABLE", 503, "Target API is unavailable"},
	{"TARGET_ERROR", 502, "Target API returned an error"},
	{"INVALID_RESPONSE", 502, "Target API returned invalid response"},
	// Validation Errors
	{"VALIDATION_ERROR", 400, "Request body validation failed"},
	{"INVALID_JSON", 400, "Request body is not valid JSON"},
	{"MISSING_FIELD", 400, "Required field is missing"},
	{"INVALID_FIELD", 400, "Field has invalid value"},
	{"PAYLOAD_TOO_LARGE", 413, "Request body exceeds size limit"},
	// Account Errors
	{"ACCOUNT_DISABLED", 403, "Account has been disabled"},
	{"ACCOUNT_PENDING_DELETION", 403, "Account scheduled for deletion"},
	{"EMAIL_NOT_VERIFIED", 403, "Email address not verified"},
	{"IP_NOT_VERIFIED", 403, "Login from new IP requires verification"},
	// Organization Errors
	{"ORG_NOT_FOUND", 404, "Organization doesn’t exist"},
	{"ORG_ACCESS_DENIED", 403, "No access to this organization"},
	{"ORG_LIMIT_REACHED", 403, "Organization limit reached"},
	{"NOT_ORG_MEMBER", 403, "Not a member of organization"},
	// Server Errors
	{"INTERNAL_ERROR", 500, "Unexpected server error"},
	{"SERVICE_UNAVAILABLE", 503, "Service temporarily unavailable"},
	{"MAINTENANCE", 503, "Service under maintenance"},
}

// seed001 is every table of 001_*.txt (Protekt).
var seed001 = []seedRow{
	// Authentication errors
	{"invalid_credentials", 401, ""},
	{"user_not_found", 404, ""},
	{"email_not_verified", 403, ""},
	{"account_locked", 423, ""},
	// Token and session errors
	{"invalid_token", 401, ""},
	{"token_expired", 401, ""},
	{"refresh_token_invalid", 401, ""},
	{"session_not_found", 404, ""},
	{"session_revoked", 401, ""},
	// Authorization errors
	{"insufficient_permissions", 403, ""},
	{"access_denied", 403, ""},
	// Server errors
	{"internal_error", 500, ""},
	{"service_unavailable", 503, ""},
}

// seed002 is the Developer API table of 002_*.txt (license).
var seed002 = []seedRow{
	{"bad_request", 400, ""},
	{"invalid_api_key", 401, ""},
	{"no_credits", 402, ""},
	{"forbidden", 403, ""},
	{"not_found", 404, ""},
	{"rate_limited", 429, ""},
	{"internal_error", 500, ""},
}

// seed002Validate and seed002Heartbeat are the "Public auth errors (SDK)" tables of 002: all
// are answered with HTTP 200 and {"status":"failed","error":...}.
var (
	seed002Validate = []seedRow{
		{"invalid_app", 200, ""},
		{"app_disabled", 200, ""},
		{"invalid_key", 200, ""},
		{"revoked", 200, ""},
		{"expired", 200, ""},
		{"hwid_mismatch", 200, ""},
		{"no_credits", 200, ""},
		{"blocked", 200, ""},
		{"bad_request", 200, ""},
	}
	seed002Heartbeat = []seedRow{
		{"session_expired", 200, ""},
		{"revoked", 200, ""},
		{"expired", 200, ""},
		{"app_disabled", 200, ""},
		{"no_credits", 200, ""},
	}
	// seed002Client is the "SDK client-side errors" table: the SDK detects these itself, so
	// a server must never send them.
	seed002Client = []string{"nonce_mismatch", "signature_mismatch"}
)

// seed003 is every code of 003_*.txt (generic), with its title.
var seed003 = []seedRow{
	{"AUTH-401", 401, "Authentication Failed"},
	{"AUTH-403", 403, "Permission Denied"},
	{"NOTFOUND-404", 404, "Resource Not Found"},
	{"SERVER-500", 500, "Internal Server Error"},
	{"BADREQUEST-400", 400, "Bad Request"},
	{"CONFLICT-409", 409, "Conflict"},
	{"TOOLIMITED-429", 429, "Too Many Requests"},
}

// notProduced are documented codes that an authorization server never has a reason to send,
// so no catalogue entry spells them exactly (some are used as another reason's nearest code).
var notProduced = map[Dialect]map[string]string{
	Protekt: {
		"invalid_credentials": "email/password login; Gatehouse checks app credentials and tokens",
		"user_not_found":      "user lookup of an identity provider",
	},
}

// sdkSurface stands for the license SDK auth endpoints in the per-dialect tables below.
const sdkSurface = numDialects

func surfaceName(d Dialect) string {
	if d == sdkSurface {
		return "license-sdk"
	}
	return d.String()
}

// documented returns the codes the seed documents list for d (or for the SDK surface).
func documented(t testing.TB, d Dialect) map[string]seedRow {
	t.Helper()
	var rows []seedRow
	switch d {
	case ProtectMyAPI:
		rows = seed000
	case Protekt:
		rows = seed001
	case License:
		rows = seed002
	case Generic:
		rows = seed003
	case sdkSurface:
		rows = append(slices.Clone(seed002Validate), seed002Heartbeat...)
	}
	m := make(map[string]seedRow, len(rows))
	for _, r := range rows {
		if old, ok := m[r.code]; ok && old != r {
			t.Fatalf("%s: seed transcription lists %q twice, differently", surfaceName(d), r.code)
		}
		m[r.code] = r
	}
	return m
}

// spelling returns e's spelling on surface d; ok is false for a zero SDK spelling.
func spelling(e *Entry, d Dialect) (Spelling, bool) {
	if d == sdkSurface {
		return e.SDK, e.SDK.Code != ""
	}
	return e.Dialects[d], true
}

var surfaces = []Dialect{ProtectMyAPI, Protekt, License, Generic, sdkSurface}

// codeConstants parses catalogue.go and returns the values of its constants of type Code, in
// order, so that a new constant without a catalogue row fails TestCatalogueOneRowPerCode.
func codeConstants(t *testing.T) []Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "catalogue.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []Code
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			if len(vs.Values) != len(vs.Names) {
				t.Fatalf("constant %s: want an explicit string value", vs.Names[0].Name)
			}
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("constant %s: want a string literal", vs.Names[i].Name)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				codes = append(codes, Code(s))
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("no constants of type Code found in catalogue.go")
	}
	return codes
}

func TestCatalogueOneRowPerCode(t *testing.T) {
	want := codeConstants(t)
	var got []Code
	for _, e := range Catalogue() {
		got = append(got, e.Code)
	}
	for _, c := range want {
		t.Run(string(c), func(t *testing.T) {
			n := 0
			for _, g := range got {
				if g == c {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d rows, want exactly 1", n)
			}
			if e, ok := Lookup(c); !ok || e.Code != c {
				t.Fatalf("Lookup(%s) = %v, %v", c, e, ok)
			}
		})
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows are not one per constant in the order of catalogue.go:\n got %v\nwant %v", got, want)
	}
}

// TestCatalogueDocumentedCodes checks that every code a seed document lists is produced by at
// least one row, as that row's exact spelling, unless an authorization server never has the
// reason (notProduced).
func TestCatalogueDocumentedCodes(t *testing.T) {
	for _, d := range surfaces {
		doc := documented(t, d)
		for _, code := range slices.Sorted(maps.Keys(doc)) {
			row := doc[code]
			t.Run(surfaceName(d)+"/"+code, func(t *testing.T) {
				var exact []Code
				for i := range Catalogue() {
					e := &Catalogue()[i]
					if sp, ok := spelling(e, d); ok && sp.Exact && sp.Code == code {
						exact = append(exact, e.Code)
						if sp.Status != row.status {
							t.Errorf("%s: status %d, documented %d", e.Code, sp.Status, row.status)
						}
					}
				}
				why, skip := notProduced[d][code]
				switch {
				case skip && len(exact) > 0:
					t.Errorf("listed as never produced (%s), but %v spell it exactly", why, exact)
				case !skip && len(exact) == 0:
					t.Errorf("documented, but no row spells it exactly")
				}
			})
		}
	}
	for d, codes := range notProduced {
		for code := range codes {
			if _, ok := documented(t, d)[code]; !ok {
				t.Errorf("notProduced lists %s %q, which the seed does not document", d, code)
			}
		}
	}
}

// TestCatalogueSpellings checks every row on every surface against the seed documents.
func TestCatalogueSpellings(t *testing.T) {
	doc000 := documented(t, ProtectMyAPI)
	for i := range Catalogue() {
		e := &Catalogue()[i]
		t.Run(string(e.Code), func(t *testing.T) {
			if e.Message == "" {
				t.Error("empty Message")
			}
			if pma := e.Dialects[ProtectMyAPI]; e.Status != pma.Status {
				t.Errorf("Status %d, but the protectmyapi spelling has %d", e.Status, pma.Status)
			}
			// A 000 code is its own protectmyapi spelling, as documented.
			if row, ok := doc000[string(e.Code)]; ok {
				pma := e.Dialects[ProtectMyAPI]
				if pma.Code != string(e.Code) || pma.Status != row.status || !pma.Exact {
					t.Errorf("protectmyapi spelling %+v, want exact %s %d", pma, e.Code, row.status)
				}
				if e.Message != row.text {
					t.Errorf("Message %q, want the 000 description %q", e.Message, row.text)
				}
			} else if e.Dialects[ProtectMyAPI].Exact {
				t.Errorf("%s is not a 000 code, but its protectmyapi spelling is marked exact", e.Code)
			}
			for _, d := range surfaces {
				sp, ok := spelling(e, d)
				if !ok {
					continue
				}
				t.Run(surfaceName(d), func(t *testing.T) { checkSpelling(t, e, d, sp) })
			}
		})
	}
}

func checkSpelling(t *testing.T, e *Entry, d Dialect, sp Spelling) {
	row, ok := documented(t, d)[sp.Code]
	if !ok {
		t.Fatalf("code %q is not documented for %s", sp.Code, surfaceName(d))
	}
	if slices.Contains(seed002Client, sp.Code) {
		t.Errorf("code %q is an SDK client-side error", sp.Code)
	}
	if sp.Status < 200 || sp.Status > 599 {
		t.Errorf("status %d out of 200..599", sp.Status)
	}
	switch {
	case d == ProtectMyAPI && !sp.Exact && sp.Status == e.Status && !documentsStatus(t, ProtectMyAPI, e.Status):
		// 000 documents no code with this status (409): the nearest code keeps the
		// status clients act on, as the other dialects do.
	case sp.Exact || d == ProtectMyAPI || d == sdkSurface:
		// Exact spellings, every protectmyapi spelling and every SDK answer carry the
		// documented status.
		if sp.Status != row.status {
			t.Errorf("%s: status %d, documented %d", sp.Code, sp.Status, row.status)
		}
	case sp.Status != row.status && sp.Status != e.Status:
		// A nearest code carries its documented status or the entry's canonical one.
		t.Errorf("%s: status %d is neither documented (%d) nor canonical (%d)", sp.Code, sp.Status, row.status, e.Status)
	}
	if d == Generic {
		if sp.Title != row.text {
			t.Errorf("title %q, documented %q", sp.Title, row.text)
		}
	} else if sp.Title != "" {
		t.Errorf("title %q set outside the generic dialect", sp.Title)
	}
	if d == sdkSurface && (sp.Message != "" || !sp.Exact) {
		t.Errorf("SDK spelling %+v: SDK bodies have no message, and are listed for their reason", sp)
	}
}

// documentsStatus reports whether a code of d's document has status.
func documentsStatus(t *testing.T, d Dialect, status int) bool {
	for _, r := range documented(t, d) {
		if r.status == status {
			return true
		}
	}
	return false
}

// decodeExact decodes body into v, rejecting unknown fields and trailing data, and checks
// that the top-level keys are exactly want.
func decodeExact(t *testing.T, body []byte, v any, want ...string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("body %s: trailing data", body)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	got := make([]string, 0, len(keys))
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("body %s: keys %v, want %v", body, got, want)
	}
}

type pmaBodyT struct {
	Success *bool `json:"success"`
	Error   *struct {
		Code    *string `json:"code"`
		Message *string `json:"message"`
	} `json:"error"`
}

type protektBodyT struct {
	Error      *string `json:"error"`
	Message    *string `json:"message"`
	StatusCode *int    `json:"statusCode"`
}

type licenseBodyT struct {
	Error   *string `json:"error"`
	Message *string `json:"message"`
}

type licenseSDKBodyT struct {
	Status  *string  `json:"status"`
	Error   *string  `json:"error"`
	Details []string `json:"details"`
}

type genericBodyT struct {
	Code    *string `json:"code"`
	Title   *string `json:"title"`
	Message *string `json:"message"`
}

// checkBody checks that r is e rendered on surface d with message msg (empty: any non-empty).
func checkBody(t *testing.T, e *Entry, d Dialect, r Rendered, msg string) {
	t.Helper()
	sp, ok := spelling(e, d)
	if !ok { // no SDK spelling: the developer-API one
		d, sp = License, e.Dialects[License]
	}
	if r.Status != sp.Status || r.Code != sp.Code {
		t.Fatalf("rendered %d %q, want %d %q", r.Status, r.Code, sp.Status, sp.Code)
	}
	wantMsg := func(got *string) {
		t.Helper()
		switch {
		case got == nil || *got == "":
			t.Errorf("body %s: no message", r.Body)
		case msg != "" && *got != msg:
			t.Errorf("body %s: message %q, want %q", r.Body, *got, msg)
		}
	}
	wantCode := func(got *string) {
		t.Helper()
		if got == nil || *got != sp.Code {
			t.Errorf("body %s: code is not %q", r.Body, sp.Code)
		}
	}
	switch d {
	case ProtectMyAPI:
		var b pmaBodyT
		decodeExact(t, r.Body, &b, "success", "error")
		var inner map[string]json.RawMessage
		decodeExact(t, mustField(t, r.Body, "error"), &inner, "code", "message")
		if b.Success == nil || *b.Success || b.Error == nil {
			t.Fatalf("body %s: want success false and an error object", r.Body)
		}
		wantCode(b.Error.Code)
		wantMsg(b.Error.Message)
	case Protekt:
		var b protektBodyT
		decodeExact(t, r.Body, &b, "error", "message", "statusCode")
		wantCode(b.Error)
		wantMsg(b.Message)
		if b.StatusCode == nil || *b.StatusCode != r.Status {
			t.Errorf("body %s: statusCode is not the HTTP status %d", r.Body, r.Status)
		}
	case License:
		var b licenseBodyT
		decodeExact(t, r.Body, &b, "error", "message")
		wantCode(b.Error)
		wantMsg(b.Message)
	case sdkSurface:
		var b licenseSDKBodyT
		keys := []string{"status", "error"}
		if sp.Code == "bad_request" {
			keys = append(keys, "details")
		}
		decodeExact(t, r.Body, &b, keys...)
		if r.Status != 200 || b.Status == nil || *b.Status != "failed" {
			t.Errorf("body %s, status %d: want 200 and status failed", r.Body, r.Status)
		}
		wantCode(b.Error)
		if sp.Code == "bad_request" && len(b.Details) == 0 {
			t.Errorf("body %s: bad_request without details", r.Body)
		}
	case Generic:
		var b genericBodyT
		decodeExact(t, r.Body, &b, "code", "title", "message")
		wantCode(b.Code)
		wantMsg(b.Message)
		if b.Title == nil || *b.Title != sp.Title || sp.Title == "" {
			t.Errorf("body %s: title is not %q", r.Body, sp.Title)
		}
	}
}

func mustField(t *testing.T, body []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

// render renders c on surface d.
func render(d Dialect, c Code, o RenderOptions) Rendered {
	if d == sdkSurface {
		d, o.SDKAuth = License, true
	}
	return Render(d, c, o)
}

func TestRenderShapes(t *testing.T) {
	for i := range Catalogue() {
		e := &Catalogue()[i]
		for _, d := range surfaces {
			t.Run(string(e.Code)+"/"+surfaceName(d), func(t *testing.T) {
				checkBody(t, e, d, render(d, e.Code, RenderOptions{}), "")
			})
		}
	}
}

func TestRenderOptions(t *testing.T) {
	const custom = "custom message"
	tests := []struct {
		name        string
		d           Dialect
		c           Code
		o           RenderOptions
		wantDetails []string // SDK bad_request only
	}{
		{name: "protectmyapi message", d: ProtectMyAPI, c: Forbidden, o: RenderOptions{Message: custom}},
		{name: "protekt message", d: Protekt, c: TokenExpired, o: RenderOptions{Message: custom}},
		{name: "license message", d: License, c: NoCredits, o: RenderOptions{Message: custom}},
		{name: "generic message", d: Generic, c: RateLimited, o: RenderOptions{Message: custom}},
		{name: "license SDK ignores details off bad_request", d: sdkSurface, c: InvalidKey,
			o: RenderOptions{Message: custom, Details: []string{"x"}}},
		{name: "license SDK bad_request details", d: sdkSurface, c: MissingField,
			o: RenderOptions{Details: []string{"hwid is required"}}, wantDetails: []string{"hwid is required"}},
		{name: "license SDK bad_request message as details", d: sdkSurface, c: InvalidJSON,
			o: RenderOptions{Message: custom}, wantDetails: []string{custom}},
		{name: "license SDK bad_request empty details", d: sdkSurface, c: ValidationError,
			o: RenderOptions{Message: custom, Details: []string{}}, wantDetails: []string{custom}},
		{name: "license SDK off an SDK error", d: sdkSurface, c: RateLimited, o: RenderOptions{Message: custom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := Lookup(tt.c)
			r := render(tt.d, tt.c, tt.o)
			checkBody(t, e, tt.d, r, tt.o.Message) // SDK bodies carry no message to check
			if tt.wantDetails != nil {
				var b licenseSDKBodyT
				if err := json.Unmarshal(r.Body, &b); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(b.Details, tt.wantDetails) {
					t.Errorf("details %q, want %q", b.Details, tt.wantDetails)
				}
			}
		})
	}
}

func TestRenderUnknownCode(t *testing.T) {
	ie, ok := Lookup(InternalError)
	if !ok {
		t.Fatal("no INTERNAL_ERROR row")
	}
	for _, d := range surfaces {
		t.Run(surfaceName(d), func(t *testing.T) {
			r := render(d, Code("NO_SUCH_CODE"), RenderOptions{})
			checkBody(t, ie, d, r, "")
			if r.Status != 500 {
				t.Errorf("status %d, want 500", r.Status)
			}
		})
	}
	t.Run("unknown dialect", func(t *testing.T) {
		r := Render(Dialect(200), Forbidden, RenderOptions{})
		e, _ := Lookup(Forbidden)
		checkBody(t, e, ProtectMyAPI, r, "")
	})
}

func TestParseDialect(t *testing.T) {
	tests := []struct {
		in      string
		want    Dialect
		wantErr bool
	}{
		{in: "protectmyapi", want: ProtectMyAPI},
		{in: "protekt", want: Protekt},
		{in: "license", want: License},
		{in: "generic", want: Generic},
		{in: "Generic", want: Generic},
		{in: "", want: ProtectMyAPI},
		{in: "protect-my-api", wantErr: true},
		{in: "licence", wantErr: true},
		{in: "protectmyapi ", wantErr: true},
		{in: "dialect(1)", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := ParseDialect(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDialect(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDialect(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if tt.in != "" {
				if back, err := ParseDialect(got.String()); err != nil || back != got {
					t.Errorf("String() %q does not parse back", got.String())
				}
			}
		})
	}
}

func BenchmarkRender(b *testing.B) {
	for _, d := range surfaces {
		b.Run(surfaceName(d), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = render(d, InvalidKey, RenderOptions{})
				}
			})
		})
	}
}
