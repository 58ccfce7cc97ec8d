package main

// A small PromQL checker for the expressions the chart ships (alerts and dashboard
// panels): it lexes an expression, checks its brackets, label matchers, range durations,
// function names and grouping clauses, and returns the metric names it selects. It is no
// full parser (Prometheus's own would bring a large module graph into go.mod); what it
// cannot see (operator precedence, argument counts and types) would be caught by Prometheus
// when the rule loads, and by the panel showing nothing.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlFuncs are PromQL's functions; promqlAggs its aggregation operators.
var (
	promqlFuncs = strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh
		avg_over_time ceil changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month
		day_of_week day_of_year days_in_month deg delta deriv double_exponential_smoothing exp floor
		histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
		histogram_stdvar histogram_sum holt_winters hour idelta increase irate label_join
		label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute
		month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar
		sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time
		stdvar_over_time sum_over_time tan tanh time timestamp vector year`)
	promqlAggs = strings.Fields(`avg bottomk count count_values group limit_ratio limitk max min
		quantile stddev stdvar sum topk`)
	// Binary operators and modifiers spelled as words.
	promqlWords = strings.Fields(`and or unless bool offset atan2`)
	// Clauses followed by a parenthesised list of label names.
	promqlLabelLists = strings.Fields(`by without on ignoring group_left group_right`)
)

var (
	durationRE   = regexp.MustCompile(`^(([0-9]+(ms|s|m|h|d|w|y))+|\$\w+|\$\{\w+\})(:(([0-9]+(ms|s|m|h|d|w|y))+|\$\w+)?)?$`)
	identRE      = regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*`)
	labelNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
	numberRE     = regexp.MustCompile(`^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)`)
	variableRE   = regexp.MustCompile(`^\$(\w+|\{\w+\})`)
	matchOpRE    = regexp.MustCompile(`^(=~|!~|!=|=)`)
	binaryOpRE   = regexp.MustCompile(`^(==|!=|>=|<=|>|<|\+|-|\*|/|%|\^)`)
	stringPrefix = "\"'`"
)

// promqlMetrics returns the metric names expr selects, or why expr is not valid PromQL.
// extra names functions the context adds (Grafana's label_values).
func promqlMetrics(expr string, extra ...string) ([]string, error) {
	sels, err := promqlSelectors(expr, extra...)
	var names []string
	for _, s := range sels {
		names = append(names, s.metric)
	}
	return names, err
}

// selector is a metric name and the label values it requires (label="value" matchers).
type selector struct {
	metric string
	equal  map[string]string
}

// promqlSelectors returns the selectors of expr, or why expr is not valid PromQL.
func promqlSelectors(expr string, extra ...string) ([]selector, error) {
	l := &promqlLexer{src: expr, extra: extra}
	if err := l.run(); err != nil {
		return nil, fmt.Errorf("%w (at byte %d of %q)", err, l.pos, expr)
	}
	return l.selectors, nil
}

type promqlLexer struct {
	src       string
	pos       int
	extra     []string
	parens    []byte // open parentheses, innermost last: 'f' a call's, '(' a group's
	selectors []selector
	named     bool // the last token is a metric name: matchers that follow are its own
	operand   bool // the last token ends an operand (a binary operator may follow)
	call      bool // the last token names a function: the next parenthesis opens its arguments
	opened    bool // the last token opened a parenthesis
}

func (l *promqlLexer) rest() string { return l.src[l.pos:] }

func (l *promqlLexer) skipSpace() {
	for l.pos < len(l.src) && strings.ContainsRune(" \t\r\n", rune(l.src[l.pos])) {
		l.pos++
	}
}

func (l *promqlLexer) run() error {
	if strings.TrimSpace(l.src) == "" {
		return fmt.Errorf("empty expression")
	}
	for l.skipSpace(); l.pos < len(l.src); l.skipSpace() {
		if err := l.token(); err != nil {
			return err
		}
	}
	if len(l.parens) > 0 {
		return fmt.Errorf("unclosed %q", l.parens[len(l.parens)-1])
	}
	if !l.operand {
		return fmt.Errorf("expression ends with an operator")
	}
	return nil
}

// token reads one token.
func (l *promqlLexer) token() error {
	r := l.rest()
	call, opened, named := l.call, l.opened, l.named
	l.call, l.opened, l.named = false, false, false
	switch c := r[0]; {
	case c == '(':
		kind := byte('(')
		if call {
			kind = 'f'
		}
		l.parens, l.operand, l.opened = append(l.parens, kind), false, true
		l.pos++
	case c == ')':
		if len(l.parens) == 0 {
			return fmt.Errorf("unexpected )")
		}
		if top := l.parens[len(l.parens)-1]; !l.operand && !(top == 'f' && opened) {
			return fmt.Errorf("unexpected )")
		}
		l.parens, l.operand = l.parens[:len(l.parens)-1], true
		l.pos++
	case c == ',':
		if len(l.parens) == 0 || !l.operand {
			return fmt.Errorf("unexpected ,")
		}
		l.pos, l.operand = l.pos+1, false
	case c == '{':
		sel := &selector{equal: map[string]string{}}
		if named {
			sel = &l.selectors[len(l.selectors)-1]
		}
		return l.matchers(sel)
	case c == '[':
		return l.rangeDuration()
	case strings.IndexByte(stringPrefix, c) >= 0:
		if _, err := l.str(); err != nil {
			return err
		}
		l.operand = true
	case numberRE.MatchString(r) && (c != '.' || len(r) > 1):
		l.pos += len(numberRE.FindString(r))
		l.operand = true
	case identRE.MatchString(r):
		return l.ident()
	case variableRE.MatchString(r):
		l.pos += len(variableRE.FindString(r))
		l.operand = true
	case binaryOpRE.MatchString(r):
		op := binaryOpRE.FindString(r)
		if l.operand == false && op != "-" && op != "+" {
			return fmt.Errorf("operator %s without a left operand", op)
		}
		l.pos, l.operand = l.pos+len(op), false
	default:
		return fmt.Errorf("unexpected %q", c)
	}
	return nil
}

// ident reads a word: a function or aggregation (followed by a parenthesis or a grouping
// clause), a keyword, a number word, or a metric name.
func (l *promqlLexer) ident() error {
	w := identRE.FindString(l.rest())
	l.pos += len(w)
	l.skipSpace()
	next := byte(0)
	if l.pos < len(l.src) {
		next = l.src[l.pos]
	}
	switch lw := strings.ToLower(w); {
	case slices.Contains(promqlLabelLists, lw):
		return l.labelList(lw == "group_left" || lw == "group_right")
	case slices.Contains(promqlWords, lw):
		if lw == "offset" {
			if m := regexp.MustCompile(`^-?([0-9]+(ms|s|m|h|d|w|y))+`).FindString(l.rest()); m != "" {
				l.pos += len(m)
				return nil
			}
			return fmt.Errorf("offset without a duration")
		}
		if !l.operand {
			return fmt.Errorf("%s without a left operand", w)
		}
		l.operand = false
	case lw == "inf" || lw == "nan":
		l.operand = true
	case slices.Contains(promqlAggs, w):
		if next != '(' && !strings.HasPrefix(l.rest(), "by") && !strings.HasPrefix(l.rest(), "without") {
			return fmt.Errorf("aggregation %s without arguments", w)
		}
		l.operand = false
	case next == '(':
		if !slices.Contains(promqlFuncs, w) && !slices.Contains(l.extra, w) {
			return fmt.Errorf("unknown function %s", w)
		}
		l.operand, l.call = false, true
	default:
		if slices.Contains(promqlFuncs, w) {
			return fmt.Errorf("function %s without arguments", w)
		}
		l.selectors = append(l.selectors, selector{metric: w, equal: map[string]string{}})
		l.operand, l.named = true, true
	}
	return nil
}

// labelList reads "(name, name…)" after by, without, on, ignoring, group_left (optional there).
func (l *promqlLexer) labelList(optional bool) error {
	if !strings.HasPrefix(l.rest(), "(") {
		if optional {
			return nil
		}
		return fmt.Errorf("grouping clause without a label list")
	}
	end := strings.IndexByte(l.rest(), ')')
	if end < 0 {
		return fmt.Errorf("unclosed label list")
	}
	for _, name := range strings.Split(l.rest()[1:end], ",") {
		if name = strings.TrimSpace(name); name != "" && labelNameRE.FindString(name) != name {
			return fmt.Errorf("bad label name %q in a grouping clause", name)
		}
	}
	l.pos += end + 1
	return nil
}

// matchers reads "{name op "value", …}" into sel.
func (l *promqlLexer) matchers(sel *selector) error {
	l.pos++
	for {
		l.skipSpace()
		if strings.HasPrefix(l.rest(), "}") {
			l.pos++
			l.operand = true
			return nil
		}
		name := labelNameRE.FindString(l.rest())
		if name == "" {
			return fmt.Errorf("bad label matcher")
		}
		l.pos += len(name)
		l.skipSpace()
		op := matchOpRE.FindString(l.rest())
		if op == "" {
			return fmt.Errorf("label %s without a match operator", name)
		}
		l.pos += len(op)
		l.skipSpace()
		v, err := l.str()
		if err != nil {
			return fmt.Errorf("label %s: %w", name, err)
		}
		if op == "=" {
			sel.equal[name] = v
		}
		if op == "=~" || op == "!~" {
			if _, err := regexp.Compile("^(?:" + v + ")$"); err != nil {
				return fmt.Errorf("label %s: bad regular expression", name)
			}
		}
		l.skipSpace()
		if strings.HasPrefix(l.rest(), ",") {
			l.pos++
		} else if !strings.HasPrefix(l.rest(), "}") {
			return fmt.Errorf("matchers not separated by commas")
		}
	}
}

// str reads a quoted string and returns its content (escapes kept).
func (l *promqlLexer) str() (string, error) {
	r := l.rest()
	if r == "" || strings.IndexByte(stringPrefix, r[0]) < 0 {
		return "", fmt.Errorf("want a quoted string")
	}
	q := r[0]
	for i := 1; i < len(r); i++ {
		switch {
		case r[i] == '\\' && q != '`':
			i++
		case r[i] == q:
			l.pos += i + 1
			return r[1:i], nil
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// rangeDuration reads "[5m]", "[5m:1m]" or "[$__rate_interval]" after a selector.
func (l *promqlLexer) rangeDuration() error {
	if !l.operand {
		return fmt.Errorf("range without a selector")
	}
	end := strings.IndexByte(l.rest(), ']')
	if end < 0 {
		return fmt.Errorf("unclosed range")
	}
	if d := strings.TrimSpace(l.rest()[1:end]); !durationRE.MatchString(d) {
		return fmt.Errorf("bad range duration %q", d)
	}
	l.pos += end + 1
	return nil
}

// TestPromQLChecker: the checker finds the metrics of valid expressions and refuses broken
// ones, so that a typo in a shipped expression fails the monitoring test. Cases typed here.
func TestPromQLChecker(t *testing.T) {
	good := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (code, step) (rate(gatehouse_decision_steps_total{decision="deny", pod=~"$pod"}[$__rate_interval]))`, []string{"gatehouse_decision_steps_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x"}[5m])))`, []string{"a_bucket"}},
		{`count by (namespace, job) (count by (namespace, job, version) (c{ job="g", namespace="n" })) > 1`, []string{"c"}},
		{`sum(rate(h[1m])) / (sum(rate(h[1m])) + sum(rate(m[1m])))`, []string{"h", "h", "m"}},
		{`time() - max by (pod) (ts{a="1"})`, []string{"ts"}},
		{`a > 0 and on (pod) b == 0`, []string{"a", "b"}},
		{`rate(x[5m:30s]) offset 1h`, []string{"x"}},
		{`-x * 2.5e-3`, []string{"x"}},
	}
	for _, g := range good {
		got, err := promqlMetrics(g.expr)
		if err != nil || !slices.Equal(got, g.want) {
			t.Errorf("%s: got %v, %v; want %v", g.expr, got, err, g.want)
		}
	}
	if got, err := promqlMetrics(`label_values(gatehouse_build_info{namespace="$namespace"})`, "label_values"); err != nil || !slices.Equal(got, []string{"gatehouse_build_info"}) {
		t.Errorf("label_values: got %v, %v", got, err)
	}
	bad := []string{
		``, `sum(rate(x[5m])`, `sum(rate(x[5m])))`, `rat(x[5m])`, `x{a="1"`, `x{a=1}`, `x{a~"1"}`,
		`x{a="1" b="2"}`, `rate(x[5 m])`, `rate(x[])`, `x >`, `sum by (a b) (x)`, `x{a=~"("}`,
		`x{a="unterminated}`, `rate x`, `sum (x) by`, `(x))`, `x offset`, `()`, `sum()`, `x[5m]]`,
	}
	for _, b := range bad {
		if got, err := promqlMetrics(b); err == nil {
			t.Errorf("%q accepted (metrics %v)", b, got)
		}
	}
}
