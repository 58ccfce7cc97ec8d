package ratelimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/internal/strictyaml"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Unit is a rate-limit unit of the rate-limit service. Its values are those of
// envoy.service.ratelimit.v3.RateLimitResponse.RateLimit.Unit, so adapters convert by
// a plain conversion.
type Unit int32

// The units, numbered as in the proto.
const (
	UnitUnknown Unit = 0
	UnitSecond  Unit = 1
	UnitMinute  Unit = 2
	UnitHour    Unit = 3
	UnitDay     Unit = 4
	UnitMonth   Unit = 5
	UnitYear    Unit = 6
	UnitWeek    Unit = 7
)

var unitNames = map[string]Unit{
	"second": UnitSecond, "minute": UnitMinute, "hour": UnitHour, "day": UnitDay,
	"week": UnitWeek, "month": UnitMonth, "year": UnitYear,
}

// RLSRequest is a ShouldRateLimit request without its protobuf.
type RLSRequest struct {
	Domain      string
	Descriptors []RLSDescriptor
	HitsAddend  uint64 // 0 counts as 1
}

// RLSDescriptor is one descriptor: ordered entries, an optional limit override and an
// optional per-descriptor hits_addend (which wins over the request's; unlike the
// request's, 0 means checked without counting, as in envoyproxy/ratelimit).
type RLSDescriptor struct {
	Entries    []RLSEntry
	Limit      *RLSOverride
	HitsAddend *uint64
	// NegativeHits (is_negative_hits) gives the hits back instead of counting them: a
	// refund, never refused, down to nothing counted (a full bucket) at most.
	NegativeHits bool
}

// RLSEntry is one key/value pair of a descriptor.
type RLSEntry struct{ Key, Value string }

// RLSOverride is a descriptor's `limit` override, sent by Envoy from route metadata.
type RLSOverride struct {
	RequestsPerUnit uint32
	Unit            Unit
}

// RLSResponse is the verdict; Statuses has one entry per request descriptor, in order.
type RLSResponse struct {
	OverLimit  bool
	Statuses   []RLSStatus
	AddHeaders bool // the configuration asks for X-RateLimit-* headers
	// RateLimit is the limit the client is told about (see tells), for the headers (set
	// only when AddHeaders): Name empty when no limit applied; Code set when the response
	// is OVER_LIMIT.
	RateLimit policy.LimitResult
}

// RLSStatus is one descriptor's status. Limit is nil when no limit applied.
type RLSStatus struct {
	OverLimit  bool
	Limit      *RLSCurrentLimit
	Remaining  uint32
	UntilReset time.Duration
	RetryAfter time.Duration // on OVER_LIMIT
}

// RLSCurrentLimit is the limit that applied to a descriptor.
type RLSCurrentLimit struct {
	RequestsPerUnit uint32
	Unit            Unit
	Multiplier      uint32 // windows of several units (e.g. per: 90s → 90 × second); 0 = 1
	Name            string
}

// rlsRules is the compiled rate-limit service configuration.
type rlsRules struct {
	domains    map[string]*rlsNode
	shadow     bool
	addHeaders bool
	fail       failMode
	loc        *time.Location
	bounds     rlsBounds
}

// The default bounds of one request, sized for Envoy's traffic: its rate_limits actions
// produce a few descriptors of a few entries each.
const (
	defaultMaxDescriptors = 64
	defaultMaxDescEntries = 16
	defaultMaxBytes       = 64 << 10
)

// rlsBounds bound the work of one request (see RLSConfig.MaxDescriptors).
type rlsBounds struct{ descriptors, entries, bytes int }

// ErrInvalidRequest wraps the error of a rate-limit request refused for its shape (too
// many descriptors, entries or bytes); its message never holds request data.
var ErrInvalidRequest = errors.New("ratelimit: invalid request")

// ErrEmptyRequest is matched (errors.Is) by the error of a request with an empty domain
// or no descriptor, which envoyproxy/ratelimit refuses; the error's own message is the
// reference's.
var ErrEmptyRequest = errors.New("ratelimit: empty request")

type emptyRequest string

func (e emptyRequest) Error() string        { return string(e) }
func (e emptyRequest) Is(target error) bool { return target == ErrEmptyRequest }

const (
	errEmptyDomain      = emptyRequest("rate limit domain must not be empty")
	errEmptyDescriptors = emptyRequest("rate limit descriptor list must not be empty")
)

// check refuses a request past the bounds, before any work proportional to its size.
func (b rlsBounds) check(req *RLSRequest) error {
	switch {
	case req.Domain == "":
		return errEmptyDomain
	case len(req.Descriptors) == 0:
		return errEmptyDescriptors
	}
	if n := len(req.Descriptors); n > b.descriptors {
		return fmt.Errorf("%w: %d descriptors, at most %d", ErrInvalidRequest, n, b.descriptors)
	}
	size := len(req.Domain)
	for i := range req.Descriptors {
		es := req.Descriptors[i].Entries
		if len(es) > b.entries {
			return fmt.Errorf("%w: descriptor %d has %d entries, at most %d", ErrInvalidRequest, i, len(es), b.entries)
		}
		for _, en := range es {
			size += len(en.Key) + len(en.Value)
		}
	}
	if size > b.bytes {
		return fmt.Errorf("%w: %d bytes of domain, keys and values, at most %d", ErrInvalidRequest, size, b.bytes)
	}
	return nil
}

func (c *compiler) rlsBounds(p string, cfg RLSConfig) rlsBounds {
	pick := func(key string, v, def int) int {
		if v < 0 {
			c.bad(p+"."+key, "must be ≥ 0 (0: the default, %d)", def)
		}
		if v <= 0 {
			return def
		}
		return v
	}
	return rlsBounds{
		descriptors: pick("max_descriptors", cfg.MaxDescriptors, defaultMaxDescriptors),
		entries:     pick("max_entries", cfg.MaxEntries, defaultMaxDescEntries),
		bytes:       pick("max_bytes", cfg.MaxBytes, defaultMaxBytes),
	}
}

type rlsKV struct{ key, value string }

type rlsNode struct {
	atomic   bool // a domain's root: counting: atomic (all or nothing)
	exact    map[rlsKV]*rlsNode
	keyOnly  map[string]*rlsNode
	wild     []rlsWild
	limit    *rlsLimit
	children int
}

// rlsWild is a value with a *: a trailing one only (prefix), or others too (parts, the
// pattern split at each *). A * matches any run of characters, / and none included.
type rlsWild struct {
	key, pattern, prefix string
	parts                []string // nil: prefix alone
	node                 *rlsNode
	share                bool // share_threshold: every matching value counts as the pattern
}

// matches reports whether value matches w.
func (w *rlsWild) matches(value string) bool {
	if w.parts == nil {
		return strings.HasPrefix(value, w.prefix)
	}
	return globMatch(w.parts, value)
}

// globMatch matches v against a pattern split at its *s (at least two parts): the first
// part is a prefix, the last a suffix, and each one between is found leftmost in turn,
// which is enough when * is the only special character.
func globMatch(parts []string, v string) bool {
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return len(v) >= len(last) && strings.HasSuffix(v, last)
}

type rlsLimit struct {
	rule      *rule
	unlimited bool
	shadow    bool
	name      string
	replaces  []string
	current   RLSCurrentLimit
	// label names the limit in metrics: its path (domain.key_value.key), configuration
	// only. detailed_metric on a key without a value adds "_other", never the request's
	// value: a client's values would make series without bound.
	label string
}

// domainKeys are the keys a domain file may hold, anywhere in it: envoyproxy/ratelimit's
// (it checks every key of a file against its one list, then ignores those out of place),
// then Gatehouse's own. A metadata block's content is not checked.
var domainKeys = map[string]bool{
	"domain": true, "key": true, "value": true, "descriptors": true, "rate_limit": true,
	"unit": true, "requests_per_unit": true, "unlimited": true, "shadow_mode": true,
	"quota_mode": true, "name": true, "replaces": true, "detailed_metric": true,
	"value_to_metric": true, "share_threshold": true,
	"algorithm": true, "per": true, "burst": true, "period": true, "time_zone": true,
	"counting": true, "metadata": true,
}

// ParseDomain decodes one envoyproxy/ratelimit configuration file as the reference does:
// a key that is not a string or not one of its keys (or Gatehouse's) is an error, and so
// is a list of anything but maps; a known key out of place is ignored.
func ParseDomain(data []byte) (DomainConfig, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return DomainConfig{}, err
	}
	var d DomainConfig
	if root.Kind == 0 { // an empty file: no domain
		return d, nil
	}
	// The key check walks each node once (an alias was checked where its anchor is); the
	// type check names every wrongly typed value by its key path and line; decoding
	// bounds aliases (a bomb, a loop).
	var errs []error
	checkDomainKeys(&root, "", &errs)
	errs = append(errs, strictyaml.CheckTypes(root.Content[0], reflect.TypeFor[DomainConfig](), "")...)
	if len(errs) > 0 {
		return DomainConfig{}, errors.Join(errs...)
	}
	if err := root.Decode(&d); err != nil {
		return DomainConfig{}, err
	}
	return d, nil
}

// checkDomainKeys applies ParseDomain's key rules to n, at YAML path p, and adds every
// problem to errs. It does not follow aliases.
func checkDomainKeys(n *yaml.Node, p string, errs *[]error) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkDomainKeys(c, p, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", p, i)
			if c.Kind == yaml.AliasNode && c.Alias != nil && c.Alias.Kind == yaml.MappingNode {
				continue
			}
			if c.Kind != yaml.MappingNode {
				*errs = append(*errs, fmt.Errorf("%s: a list item must be a map (line %d)", ip, c.Line))
				continue
			}
			checkDomainKeys(c, ip, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				*errs = append(*errs, fmt.Errorf("%s: a key is not a string (line %d)", cmp.Or(p, "top level"), k.Line))
				continue
			}
			kp := strings.TrimPrefix(p+"."+k.Value, ".")
			if !domainKeys[k.Value] {
				*errs = append(*errs, fmt.Errorf("%s: unknown key (line %d)", kp, k.Line))
				continue
			}
			if k.Value != "metadata" {
				checkDomainKeys(n.Content[i+1], kp, errs)
			}
		}
	}
}

func (c *compiler) rls(p string, cfg RLSConfig) *rlsRules {
	rr := &rlsRules{domains: map[string]*rlsNode{}, shadow: cfg.ShadowMode, addHeaders: cfg.AddHeaders}
	rr.bounds = c.rlsBounds(p, cfg)
	switch cfg.FailMode {
	case "", "error":
		rr.fail = failClosed
	case "allow":
		rr.fail = failOpen
	case "local":
		rr.fail = failLocal
	default:
		c.bad(p+".fail_mode", "must be error, allow or local, not %q", cfg.FailMode)
	}
	rr.loc = c.location(p+".time_zone", cfg.TimeZone)
	for i, name := range cfg.Files {
		if name == "" { // a file the caller chose not to read (absent where validated)
			continue
		}
		files := []string{name}
		if strings.ContainsAny(name, "*?[") { // a pattern, e.g. ratelimit/*.yaml
			var err error
			if files, err = globFiles(name); err != nil || len(files) == 0 {
				c.bad(fmt.Sprintf("%s.files[%d] (%s)", p, i, name), "matches no file (%v)", cmp.Or(err, fs.ErrNotExist))
				continue
			}
		}
		for _, f := range files {
			fp := fmt.Sprintf("%s.files[%d] (%s)", p, i, f)
			data, err := readDomainFile(f)
			if err != nil {
				c.bad(fp, "%v", err)
				continue
			}
			d, err := ParseDomain(data)
			if err != nil {
				for _, e := range each(err) {
					c.bad(fp, "%v", e)
				}
				continue
			}
			c.domain(fp, d, rr)
		}
	}
	for i, d := range cfg.Domains {
		c.domain(fmt.Sprintf("%s.domains[%d]", p, i), d, rr)
	}
	return rr
}

func (c *compiler) domain(p string, d DomainConfig, rr *rlsRules) {
	if d.Domain == "" {
		c.bad(p+".domain", "required")
		return
	}
	if strings.Contains(d.Domain, "#") || strings.HasSuffix(d.Domain, "/override") {
		// counter ids are "rls/<domain>#…" and "rls/<domain>/override#…": either would
		// let two domains name one counter
		c.bad(p+".domain", "must not contain # nor end in /override")
		return
	}
	if _, dup := rr.domains[d.Domain]; dup {
		c.bad(p+".domain", "duplicate domain %q", d.Domain)
		return
	}
	root := &rlsNode{}
	switch d.Counting {
	case "", "every_hit":
	case "atomic":
		root.atomic = true
	default:
		c.bad(p+".counting", "must be every_hit or atomic, not %q", d.Counting)
	}
	c.descriptors(p+".descriptors", d.Domain, d.Domain, d.Descriptors, root, rr)
	rr.domains[d.Domain] = root
}

func (c *compiler) descriptors(p, domain, parent string, ds []DescriptorConfig, n *rlsNode, rr *rlsRules) {
	for i, d := range ds {
		dp := fmt.Sprintf("%s[%d]", p, i)
		if d.Key == "" {
			c.bad(dp+".key", "required")
			continue
		}
		child := &rlsNode{}
		path := parent + "." + d.Key
		if d.Value != "" {
			path += "_" + d.Value
		}
		if d.ShareThreshold && !strings.HasSuffix(d.Value, "*") {
			c.bad(dp+".share_threshold", "only for a wildcard value (ending in *), not %q", d.Value)
			continue
		}
		if !n.insert(d.Key, d.Value, d.ShareThreshold, child) {
			c.bad(dp, "duplicate descriptor %q", path)
			continue
		}
		if d.RateLimit != nil { // shadow_mode and quota_mode without one: no effect, as the reference
			child.limit = c.rateLimit(dp+".rate_limit", domain, path, d, rr)
		}
		c.descriptors(dp+".descriptors", domain, path, d.Descriptors, child, rr)
	}
}

// insert adds child under key/value (a wildcard value shared by its matches when share);
// false if that pair is already there.
func (n *rlsNode) insert(key, value string, share bool, child *rlsNode) bool {
	n.children++
	switch {
	case value == "":
		if n.keyOnly == nil {
			n.keyOnly = map[string]*rlsNode{}
		}
		if n.keyOnly[key] != nil {
			return false
		}
		n.keyOnly[key] = child
	case strings.Contains(value, "*"):
		for _, w := range n.wild {
			if w.key == key && w.pattern == value {
				return false
			}
		}
		w := rlsWild{key: key, pattern: value, prefix: strings.TrimSuffix(value, "*"), node: child, share: share}
		if strings.Contains(w.prefix, "*") {
			w.parts = strings.Split(value, "*")
		}
		n.wild = append(n.wild, w)
	default:
		if n.exact == nil {
			n.exact = map[rlsKV]*rlsNode{}
		}
		kv := rlsKV{key, value}
		if n.exact[kv] != nil {
			return false
		}
		n.exact[kv] = child
	}
	return true
}

var unitDurations = []struct {
	unit Unit
	d    time.Duration
}{{UnitHour, time.Hour}, {UnitMinute, time.Minute}, {UnitSecond, time.Second}}

func (c *compiler) rateLimit(p, domain, path string, d DescriptorConfig, rr *rlsRules) *rlsLimit {
	rl := d.RateLimit
	l := &rlsLimit{unlimited: rl.Unlimited, shadow: d.ShadowMode || d.QuotaMode, name: rl.Name, label: path}
	if d.DetailedMetric && d.Value == "" {
		l.label = path + "_other" // a configured value or pattern is in path already
	}
	for j, r := range rl.Replaces {
		switch {
		case r.Name == "":
			c.bad(fmt.Sprintf("%s.replaces[%d].name", p, j), "required")
		case r.Name == rl.Name:
			c.bad(fmt.Sprintf("%s.replaces[%d].name", p, j), "a limit cannot replace itself")
		}
		l.replaces = append(l.replaces, r.Name)
	}
	unit, unitOK := unitNames[strings.ToLower(rl.Unit)]
	if rl.Unlimited {
		if unitOK {
			c.bad(p+".unit", "should not be set when unlimited")
		}
		return l
	}
	rich := rl.Algorithm != "" || rl.Per != 0 || rl.Period != "" || rl.Burst != 0
	if (!rich || rl.Unit != "") && !unitOK {
		c.bad(p+".unit", "must be second, minute, hour, day, week, month or year, not %q", rl.Unit)
		return nil
	}
	lc := LimitConfig{Name: rl.Name, Algorithm: rl.Algorithm, Requests: int64(rl.RequestsPerUnit),
		Per: rl.Per, Burst: rl.Burst, Period: rl.Period, TimeZone: rl.TimeZone}
	if lc.Algorithm == "" && lc.Period == "" && lc.Per == 0 {
		lc.Algorithm = "fixed_window"
	}
	if unitOK && lc.Per == 0 && lc.Period == "" {
		switch unit {
		case UnitSecond:
			lc.Per = time.Second
		case UnitMinute:
			lc.Per = time.Minute
		case UnitHour:
			lc.Per = time.Hour
		default:
			if lc.Algorithm == "gcra" {
				lc.Per = map[Unit]time.Duration{UnitDay: 24 * time.Hour, UnitWeek: 7 * 24 * time.Hour,
					UnitMonth: 30 * 24 * time.Hour, UnitYear: 365 * 24 * time.Hour}[unit]
				break
			}
			lc.Algorithm = "calendar"
			lc.Period = map[Unit]string{UnitDay: "day", UnitWeek: "week", UnitMonth: "month", UnitYear: "year"}[unit]
		}
	}
	if lc.Period != "" && lc.TimeZone == "" {
		lc.TimeZone = rr.loc.String()
	}
	r := c.rlsRule(p, lc)
	if r == nil {
		return nil
	}
	r.shadow = d.ShadowMode || d.QuotaMode
	r.id = "rls/" + domain + "#" + r.signature()
	r.idh = state.IDHash(r.id)
	l.rule = r
	l.current = RLSCurrentLimit{RequestsPerUnit: rl.RequestsPerUnit, Name: rl.Name}
	l.current.Unit, l.current.Multiplier = presentUnit(r)
	return l
}

// rlsRule compiles lc like an inline limit, except that a counter (a fixed window or a
// calendar period) may allow 0: envoyproxy's requests_per_unit 0 blocks every request.
func (c *compiler) rlsRule(p string, lc LimitConfig) *rule {
	zero := lc.Requests == 0 && (lc.Algorithm == "fixed_window" || lc.Algorithm == "calendar")
	if zero {
		lc.Requests = 1
	}
	sub := &compiler{}
	if lc.Name == "" {
		lc.Name = "rls"
	}
	r := sub.limit(p, "rls", lc, false)
	for _, err := range sub.errs {
		c.errs = append(c.errs, errors.New(strings.Replace(err.Error(), p+".requests", p+".requests_per_unit", 1)))
	}
	if r != nil && zero {
		r.requests = 0
	}
	return r
}

// presentUnit expresses r's window as a unit and multiplier for statuses.
func presentUnit(r *rule) (Unit, uint32) {
	switch r.alg {
	case algCalendar:
		return map[Period]Unit{PeriodDay: UnitDay, PeriodWeek: UnitWeek, PeriodMonth: UnitMonth, PeriodYear: UnitYear}[r.period], 0
	}
	for _, u := range unitDurations {
		if r.per >= u.d && r.per%u.d == 0 {
			m := uint32(min(int64(r.per/u.d), math.MaxUint32))
			if m == 1 {
				m = 0
			}
			return u.unit, m
		}
	}
	return UnitSecond, 0
}

// match finds the limit for a descriptor as envoyproxy/ratelimit does: level by level,
// key and value first, then the first wildcard listed that matches (a trailing * is the
// reference's prefix match; a * elsewhere is Gatehouse's), then the key alone; a limit applies
// only at the level of the descriptor's last entry. shared is nil unless an entry matched
// a wildcard with share_threshold: then shared[i] is the pattern that entry i counts as.
func (n *rlsNode) match(entries []RLSEntry) (found *rlsLimit, shared []string) {
	level := n
	for i, en := range entries {
		next := level.exact[rlsKV{en.Key, en.Value}]
		if next == nil {
			for j := range level.wild {
				if w := &level.wild[j]; w.key == en.Key && w.matches(en.Value) {
					next = w.node
					if w.share {
						if shared == nil {
							shared = make([]string, len(entries))
						}
						shared[i] = w.pattern
					}
					break
				}
			}
		}
		if next == nil {
			next = level.keyOnly[en.Key]
		}
		if next == nil {
			break
		}
		if next.limit != nil && i == len(entries)-1 {
			found = next.limit
		}
		if next.children == 0 {
			break
		}
		level = next
	}
	return found, shared
}

// override is the limit of a descriptor's `limit` field: a window of its unit, never in
// shadow mode, counted apart from configured limits.
func (rr *rlsRules) override(domain string, o *RLSOverride) *rlsLimit {
	r := &rule{name: "", requests: int64(o.RequestsPerUnit), loc: rr.loc}
	switch o.Unit {
	case UnitSecond, UnitMinute, UnitHour:
		r.alg = algFixedWindow
		r.per = map[Unit]time.Duration{UnitSecond: time.Second, UnitMinute: time.Minute, UnitHour: time.Hour}[o.Unit]
	case UnitDay, UnitWeek, UnitMonth, UnitYear:
		r.alg = algCalendar
		r.persist = true
		r.period = map[Unit]Period{UnitDay: PeriodDay, UnitWeek: PeriodWeek, UnitMonth: PeriodMonth, UnitYear: PeriodYear}[o.Unit]
	default:
		return nil
	}
	r.id = "rls/" + domain + "/override#" + r.signature()
	return &rlsLimit{rule: r, current: RLSCurrentLimit{RequestsPerUnit: o.RequestsPerUnit, Unit: o.Unit}, label: domain + ".override"}
}

// ShouldRateLimit counts the request's descriptors of its domain in one store call. An
// unknown domain, or a descriptor that matches nothing, is OK without a limit. The error
// wraps [ErrInvalidRequest] when the request is past the configured bounds; otherwise it
// is non-nil only when the store could not be reached and the fail mode is error. A
// request with an empty domain or no descriptor is refused with an error that matches
// [ErrEmptyRequest].
func (e *Engine) ShouldRateLimit(ctx context.Context, now time.Time, req RLSRequest) (RLSResponse, error) {
	rr := e.rls
	if err := rr.bounds.check(&req); err != nil {
		return RLSResponse{}, err
	}
	resp := RLSResponse{Statuses: make([]RLSStatus, len(req.Descriptors)), AddHeaders: rr.addHeaders}
	dom := rr.domains[req.Domain]
	if dom == nil {
		return resp, nil
	}
	lims, shared := rr.resolve(req, dom)
	b := getBatch()
	defer putBatch(b)
	idx := make([]int, 0, len(lims))
	for i, l := range lims {
		switch {
		case l == nil:
		case l.unlimited:
			resp.Statuses[i].Remaining = math.MaxUint32
		default:
			op := b.next(l.rule)
			op.Key.Reset(l.rule.id, req.Domain, l.rule.idh)
			descriptorKey(&op.Key, req.Descriptors[i].Entries, shared, i)
			l.rule.fill(op, now, hits(req, i))
			op.Shadow = l.shadow || rr.shadow // each counts on its own: none blocks another
			op.Always = !dom.atomic
			idx = append(idx, i)
		}
	}
	if len(b.ops) == 0 {
		return resp, nil
	}
	if err := e.apply(ctx, now, b.ops, b.outs, rr.fail); err != nil {
		if errors.Is(err, errFailOpen) {
			return resp, nil
		}
		return RLSResponse{}, err
	}
	var told Status
	denied := false
	for j, i := range idx {
		l := lims[i]
		st := l.rule.status(&b.ops[j], b.outs[j], now)
		if rr.addHeaders && !l.shadow { // only the headers tell it
			d := !b.outs[j].Allowed
			if d {
				st = rlsDenial(st)
			}
			if resp.RateLimit.Name == "" || tells(st, d, told, denied) {
				told, denied = st, d
				resp.RateLimit = policy.LimitResult{Name: l.headerName(), Limit: int64(l.current.RequestsPerUnit), Remaining: st.Remaining, Reset: st.Reset, RetryAfter: st.RetryAfter}
			}
		}
		cur := l.current
		s := RLSStatus{Limit: &cur, Remaining: uint32(clamp(st.Remaining, 0, math.MaxUint32))}
		if !st.Reset.IsZero() {
			s.UntilReset = max(st.Reset.Sub(now), 0)
		}
		if !b.outs[j].Allowed {
			s.Remaining, s.RetryAfter = 0, st.RetryAfter
			if l.shadow {
				e.metrics.ShadowHit("rls", l.label)
			} else {
				s.OverLimit, resp.OverLimit = true, true
				e.metrics.OverLimitHit("rls", l.label)
			}
		}
		resp.Statuses[i] = s
	}
	if resp.OverLimit && rr.shadow {
		resp.OverLimit = false
		e.metrics.ShadowHit("rls", "global")
	}
	if resp.OverLimit {
		resp.RateLimit.Code = policy.RateLimited
	} else {
		resp.RateLimit.RetryAfter = 0
	}
	return resp, nil
}

// headerName names l in the told limit: its configured name, else its path.
func (l *rlsLimit) headerName() string {
	if l.name != "" {
		return l.name
	}
	return l.label
}

// resolve finds each descriptor's limit and drops the limits that another matched limit
// replaces.
// resolve finds each descriptor's limit, after replaces; shared is nil unless a
// descriptor matched a shared wildcard (see match), else shared[i] is descriptor i's.
func (rr *rlsRules) resolve(req RLSRequest, dom *rlsNode) (lims []*rlsLimit, shared [][]string) {
	lims = make([]*rlsLimit, len(req.Descriptors))
	var replaced map[string]bool
	for i, d := range req.Descriptors {
		if d.Limit != nil {
			lims[i] = rr.override(req.Domain, d.Limit)
			continue
		}
		l, sh := dom.match(d.Entries)
		lims[i] = l
		if sh != nil {
			if shared == nil {
				shared = make([][]string, len(req.Descriptors))
			}
			shared[i] = sh
		}
		if l != nil && len(l.replaces) > 0 {
			if replaced == nil {
				replaced = map[string]bool{}
			}
			for _, n := range l.replaces {
				replaced[n] = true
			}
		}
	}
	for i, l := range lims {
		if l != nil && l.name != "" && replaced[l.name] {
			lims[i] = nil
		}
	}
	return lims, shared
}

// descriptorKey adds descriptor i's entries to k: each entry is one part, its key's
// length, ":", its key and its value (unambiguous); entries past the key's parts are
// folded into the last part in one buffer, as Key.add would fold them one by one.
func descriptorKey(k *Key, es []RLSEntry, shared [][]string, i int) {
	head := len(es)
	if head > state.MaxParts {
		head = state.MaxParts - 1
	}
	for j := 0; j < head; j++ {
		en := &es[j]
		k.Add(strconv.Itoa(len(en.Key)) + ":" + en.Key + countedAs(shared, i, j, en.Value))
	}
	if head == len(es) {
		return
	}
	var b []byte
	for j := head; j < len(es); j++ {
		en := &es[j]
		v := countedAs(shared, i, j, en.Value)
		kl := strconv.Itoa(len(en.Key))
		b = strconv.AppendInt(b, int64(len(kl)+1+len(en.Key)+len(v)), 10) // state.LengthPrefixed(part)
		b = append(b, ':')
		b = append(b, kl...)
		b = append(b, ':')
		b = append(b, en.Key...)
		b = append(b, v...)
	}
	k.SetFolded(string(b))
}

// countedAs is the value entry k of descriptor i counts as: its own, or the wildcard
// pattern it matched with share_threshold (one counter for every matching value).
func countedAs(shared [][]string, i, k int, value string) string {
	if shared != nil && shared[i] != nil && shared[i][k] != "" {
		return shared[i][k]
	}
	return value
}

// hits is the cost of descriptor i: its own hits_addend, else the request's; 0 counts as 1.
func hits(req RLSRequest, i int) int64 {
	d := &req.Descriptors[i]
	h := int64(min(max(req.HitsAddend, 1), math.MaxUint32))
	if d.HitsAddend != nil {
		h = int64(min(*d.HitsAddend, math.MaxUint32)) // 0 included: checked without counting
	}
	if d.NegativeHits {
		return -h
	}
	return h
}

// each returns the errors a joined error holds, or err alone.
func each(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// globFiles is filepath.Glob without the names a Kubernetes volume keeps for itself
// (..data and the ..<timestamp> directory it points to), which a pattern such as
// ratelimit/* over a ConfigMap mount would otherwise match.
func globFiles(pattern string) ([]string, error) {
	names, err := filepath.Glob(pattern)
	kept := names[:0]
	for _, n := range names {
		if !strings.HasPrefix(filepath.Base(n), "..") {
			kept = append(kept, n)
		}
	}
	return kept, err
}
