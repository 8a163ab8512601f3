// Package search evaluates Bulk Data _typeFilter queries and applies
// _elements subsetting to stored resources. It is pure: it works on the
// compact JSON of one resource at a time and knows nothing of jobs or
// storage.
//
// _typeFilter (requirements 1.4.7, R26–R31): Parse compiles one single-type
// FHIR search query, such as "Observation?status=final&date=ge2024-01", into
// a Filter; ParseAll groups the values of the parameter into a Set.
//
// _elements (requirements 1.4.5, 5.6, R21, R22): ParseElements and
// Elements.Subset.
//
// Each store speaks one FHIR release (issue 17), and so does each Engine:
// For(v) returns the engine of release v, whose resource types, search
// parameters (with the element paths their SearchParameter definitions
// select), mandatory elements and choice elements come from that release's
// definitions in internal/fhir/defs. Every type has all its parameters of
// type token, date, reference, string, uri or quantity whose expression
// selects element paths. Values are matched by the rules of R4
// search.html, whatever the release. The package-level functions are those
// of the R4 engine.
package search

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tranchehq/tranche/internal/bulk"
)

// resultParams are the search result parameters (R4 search.html#return)
// that a _typeFilter SHALL NOT use (1.4.7, R29).
var resultParams = map[string]bool{
	"_include": true, "_revinclude": true, "_sort": true, "_count": true,
	"_elements": true, "_summary": true, "_total": true, "_contained": true,
	"_containedType": true,
}

// Filter is one compiled _typeFilter query. It is immutable and safe for
// concurrent use.
type Filter struct {
	typ     string
	query   string // canonical form, for String
	clauses []*clause
}

// matcher matches one search value against one value the parameter's path
// selects.
type matcher interface {
	match(v gjson.Result, p *path) bool
}

// clause is one parameter of the query: its values are OR-ed, clauses are
// AND-ed.
type clause struct {
	p       *param
	values  []matcher
	not     bool // :not
	missing int  // 0, or missingTrue / missingFalse for :missing
}

const (
	missingTrue = iota + 1
	missingFalse
)

// Type returns the resource type the filter applies to.
func (f *Filter) Type() string { return f.typ }

// String returns the query in a canonical form: the type, then the
// non-empty parameters in order, percent-encoded only where needed. Parse
// accepts it and returns a Filter with the same String.
func (f *Filter) String() string { return f.query }

// Match reports whether the resource with compact JSON body satisfies the
// query: every parameter matches (AND), and a parameter matches when any of
// its comma-separated values does (OR). A body that is not a JSON object, or
// whose resourceType is not the filter's type, never matches.
func (f *Filter) Match(body []byte) bool {
	root := gjson.ParseBytes(body)
	if !root.IsObject() || root.Get("resourceType").String() != f.typ {
		return false
	}
	for _, c := range f.clauses {
		if !c.match(root) {
			return false
		}
	}
	return true
}

func (c *clause) match(root gjson.Result) bool {
	if c.missing != 0 {
		present := false
		for i := range c.p.paths {
			p := &c.p.paths[i]
			if p.each(root, func(v gjson.Result) bool {
				return c.p.Type != "reference" || refPresent(v, p)
			}) {
				present = true
				break
			}
		}
		return present == (c.missing == missingFalse)
	}
	hit := false
	for i := range c.p.paths {
		p := &c.p.paths[i]
		if p.each(root, func(v gjson.Result) bool {
			for _, m := range c.values {
				if m.match(v, p) {
					return true
				}
			}
			return false
		}) {
			hit = true
			break
		}
	}
	return hit != c.not
}

// Parse parses one _typeFilter value, a single-type FHIR search query such
// as "MedicationRequest?status=active&authoredon=ge2024-01". Names and
// values are percent-decoded; a comma separates alternative values (OR),
// and "\," is a literal comma; repeated and different parameters are
// AND-ed; parameters with an empty value are ignored (R4 search.html).
//
// Returns EINVALID when the query has no "?", a type that is not a resource
// type of the engine's release, a system or compartment context ("?code=x",
// "Patient/1/Observation?…"), a result parameter (_include, _revinclude,
// _sort, _count, _elements, _summary, _total, _contained, _containedType) or
// _type, or a value that cannot be parsed for its parameter's type. Returns
// EUNSUPPORTED for a parameter that the release does not define for the
// type or that the engine does not serve (composite, special and number
// parameters, those whose expression selects no element path, phonetic,
// near, _in), and for an unsupported modifier, prefix (ap) or chained
// parameter. Every message names the offending parameter (R29, R30).
func (e *Engine) Parse(query string) (*Filter, error) {
	typ, q, ok := strings.Cut(query, "?")
	switch {
	case !ok:
		return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s is not a search query: use the form Type?parameter=value, e.g. Observation?status=final.", quote(query))
	case typ == "":
		return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s has no resource type: system-wide queries are not allowed, only single-type ones such as Observation?status=final.", quote(query))
	case strings.Contains(typ, "/"):
		return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s has a compartment or base-URL context: only single-type queries such as Observation?status=final are allowed.", quote(query))
	case !e.defs.IsResourceType(typ):
		return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s: %s is not a FHIR %s resource type.", quote(query), quote(typ), e.name)
	}
	f := &Filter{typ: typ}
	var canon []string
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s: the parameter name %s is not properly percent-encoded.", quote(query), quote(rawName))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s: the value of parameter %s is not properly percent-encoded.", quote(query), quote(name))
		}
		c, err := e.compileClause(typ, name, value, query)
		if err != nil {
			return nil, err
		}
		if c != nil {
			f.clauses = append(f.clauses, c)
			canon = append(canon, escapeQuery(name)+"="+escapeQuery(value))
		}
	}
	f.query = typ + "?" + strings.Join(canon, "&")
	return f, nil
}

// compileClause compiles one name=value; it returns nil for an empty value.
func (e *Engine) compileClause(typ, name, value, query string) (*clause, error) {
	base, mod, hasMod := strings.Cut(name, ":")
	if err := checkParamName(base, mod, hasMod, name, query); err != nil {
		return nil, err
	}
	p := e.lookup(typ, base)
	if p == nil {
		return nil, bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: the search parameter %s is not supported for %s.", quote(query), quote(base), typ)
	}
	c := &clause{p: p}
	refType := ""
	switch {
	case !hasMod:
	case mod == "missing":
	case mod == "not" && p.Type == "token":
		c.not = true
	case mod == "text" && p.Type == "token":
	case (mod == "exact" || mod == "contains") && p.Type == "string":
	case (mod == "below" || mod == "above") && p.Type == "uri":
	case p.Type == "reference" && e.defs.IsResourceType(mod):
		refType = mod
	default:
		return nil, bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: the modifier :%s of parameter %s is not supported.", quote(query), mod, quote(base))
	}
	var items []string
	for _, it := range splitEscaped(value, ',', 0) {
		if it != "" {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	if mod == "missing" {
		return compileMissing(c, items, name, query)
	}
	for _, it := range items {
		m, err := e.compileValue(p.Type, mod, refType, it, name, query)
		if err != nil {
			return nil, err
		}
		c.values = append(c.values, m)
	}
	return c, nil
}

// checkParamName refuses the parameter names a _typeFilter may not use
// (base:mod is the name): none, result parameters, _type, reverse
// chaining and chains.
func checkParamName(base, mod string, hasMod bool, name, query string) error {
	switch {
	case base == "":
		return bulk.Errorf(bulk.EINVALID, "_typeFilter %s has a parameter without a name.", quote(query))
	case resultParams[base]:
		return bulk.Errorf(bulk.EINVALID, "_typeFilter %s: the result parameter %s is not allowed in _typeFilter.", quote(query), base)
	case base == "_type":
		return bulk.Errorf(bulk.EINVALID, "_typeFilter %s: the parameter _type makes a multi-type query; each _typeFilter must be for one type.", quote(query))
	case strings.HasPrefix(base, "_has"):
		return bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: reverse chaining (%s) is not supported.", quote(query), quote(name))
	case strings.Contains(base, ".") || (hasMod && strings.Contains(mod, ".")):
		return bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: the chained parameter %s is not supported.", quote(query), quote(name))
	}
	return nil
}

// invalidValue is the error of a value it of parameter name that does
// not parse; want says what would.
func invalidValue(query, it, name, want string) error {
	return bulk.Errorf(bulk.EINVALID, "_typeFilter %s: %s is not a valid value for parameter %s (%s).", quote(query), quote(unescape(it)), quote(name), want)
}

// compileMissing sets c.missing from the values of a :missing modifier;
// both true and false is no constraint (nil).
func compileMissing(c *clause, items []string, name, query string) (*clause, error) {
	for _, it := range items {
		switch it {
		case "true":
			c.missing = missingTrue
		case "false":
			c.missing = missingFalse
		default:
			return nil, invalidValue(query, it, name, "use true or false")
		}
	}
	if len(items) > 1 && slices.Contains(items, "true") && slices.Contains(items, "false") {
		return nil, nil // either way: no constraint
	}
	return c, nil
}

// compileValue compiles one value it of a parameter of type ptype with
// modifier mod (refType: the type a reference modifier names). It is a
// flat switch over the search parameter types.
func (e *Engine) compileValue(ptype, mod, refType, it, name, query string) (matcher, error) {
	switch ptype {
	case "token":
		if mod == "text" {
			return tokenText{folded: fold(unescape(it))}, nil
		}
		return parseToken(it), nil
	case "string":
		s := stringValue{raw: unescape(it)}
		s.folded = fold(s.raw)
		switch mod {
		case "exact":
			s.mode = stringExact
		case "contains":
			s.mode = stringContains
		}
		return s, nil
	case "uri":
		u := uriValue{uri: unescape(it)}
		switch mod {
		case "below":
			u.mode = uriBelow
		case "above":
			u.mode = uriAbove
		}
		return u, nil
	case "reference":
		r, ok := parseRef(unescape(it), refType, e.defs.IsResourceType)
		if !ok {
			return nil, invalidValue(query, it, name, "use Type/id, an id or an absolute URL")
		}
		return r, nil
	case "date":
		prefix, rest := cutPrefix(unescape(it))
		if prefix == prefixAp {
			return nil, bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: the prefix ap of parameter %s is not supported.", quote(query), quote(name))
		}
		r, ok := parseDate(rest, true)
		if !ok {
			return nil, invalidValue(query, it, name, "use a FHIR date with an optional prefix, e.g. ge2024-01-31")
		}
		return dateValue{prefix: prefix, dateRange: r}, nil
	case "quantity":
		if pr, _ := cutPrefix(it); pr == prefixAp {
			return nil, bulk.Errorf(bulk.EUNSUPPORTED, "_typeFilter %s: the prefix ap of parameter %s is not supported.", quote(query), quote(name))
		}
		q, ok := parseQuantity(it)
		if !ok {
			return nil, invalidValue(query, it, name, "use [prefix]number[|system|code], e.g. gt5.4|http://unitsofmeasure.org|mg")
		}
		return q, nil
	}
	return nil, nil
}

// escapeQuery percent-encodes the bytes of s that would change its meaning
// in a query component ("%", "&", "=", "+", "#", space and control
// characters), and no others, so that String stays readable.
func escapeQuery(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' || c == '&' || c == '=' || c == '+' || c == '#' || c <= ' ' || c == 0x7f:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// quote quotes s for an error message, shortened to keep messages small.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut-- // do not split a UTF-8 sequence
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// Set holds the _typeFilter queries of one export, grouped by type.
type Set map[string][]*Filter

// ParseAll parses the _typeFilter parameter values of an export. Each value
// is one query (v3, or one POST Parameters part) or a v2-style
// comma-separated list of URL-encoded queries: it is split on the unencoded
// commas that start a new query ("…,Condition?…" or "…,Condition%3F…"), so a
// comma inside a query (an OR of values) stays in it; a query that is still
// encoded (its "?" is "%3F") is then percent-decoded (R31). Repeated values
// are joined (R27). Errors are those of Parse.
func (e *Engine) ParseAll(values []string) (Set, error) {
	s := make(Set)
	for _, v := range values {
		fs, err := e.parseValue(v)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			s[f.typ] = append(s[f.typ], f)
		}
	}
	return s, nil
}

// parseValue parses one _typeFilter value: a query, or a v2 list of them.
func (e *Engine) parseValue(v string) ([]*Filter, error) {
	var out []*Filter
	for _, q := range splitQueries(v) {
		if i := strings.IndexByte(q, '?'); i < 0 && hasEncodedQuery(q) {
			dq, err := url.PathUnescape(q)
			if err != nil {
				return nil, bulk.Errorf(bulk.EINVALID, "_typeFilter %s is not properly percent-encoded.", quote(q))
			}
			q = dq
		}
		f, err := e.Parse(q)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// splitQueries splits a v2 comma-separated list of queries: each query is
// a slice of v, so a query of many comma-OR values costs linear time, not
// a concatenation per comma.
func splitQueries(v string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ',' {
			continue
		}
		// v[start:] begins a query; a comma at i ends a query when what
		// follows it starts a new one.
		if i == len(v) || startsQuery(v[i+1:]) {
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return out
}

// startsQuery reports whether s begins with a capitalized name followed by
// "?" or its encoding "%3F".
func startsQuery(s string) bool {
	i := 0
	for i < len(s) && ('a' <= s[i] && s[i] <= 'z' || 'A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == 0 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	rest := s[i:]
	return strings.HasPrefix(rest, "?") || strings.HasPrefix(rest, "%3F") || strings.HasPrefix(rest, "%3f")
}

// hasEncodedQuery reports whether q looks like Type%3F…, an encoded query.
func hasEncodedQuery(q string) bool {
	for i := 1; i+2 < len(q); i++ {
		if q[i] == '%' && q[i+1] == '3' && (q[i+2] == 'F' || q[i+2] == 'f') {
			return !strings.ContainsAny(q[:i], "/?&=")
		}
	}
	return false
}

// Types returns the filtered types, sorted.
func (s Set) Types() []string {
	types := make([]string, 0, len(s))
	for t := range s {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Match reports whether a resource of type typ with compact JSON body passes
// the set: it matches one of the type's filters (OR, R27), or the type has
// none (R28).
func (s Set) Match(typ string, body []byte) bool {
	filters, ok := s[typ]
	if !ok {
		return true
	}
	for _, f := range filters {
		if f.Match(body) {
			return true
		}
	}
	return false
}

// Canonical parses one _typeFilter parameter value, a query or a v2
// comma-separated list of them (see ParseAll), and returns each query in
// the canonical form of Filter.String, in order. It is the kick-off
// parser's _typeFilter hook (fhir.KickoffInput.TypeFilter). Errors are
// those of Parse.
func (e *Engine) Canonical(value string) ([]string, error) {
	fs, err := e.parseValue(value)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out, nil
}

// CheckElement validates one _elements entry as ParseElements does. It is
// the kick-off parser's _elements hook (fhir.KickoffInput.Element).
func (e *Engine) CheckElement(entry string) error {
	_, err := e.ParseElements([]string{entry})
	return err
}

// Parse is Parse of the R4 engine.
func Parse(query string) (*Filter, error) { return r4().Parse(query) }

// ParseAll is ParseAll of the R4 engine.
func ParseAll(values []string) (Set, error) { return r4().ParseAll(values) }

// Canonical is Canonical of the R4 engine.
func Canonical(value string) ([]string, error) { return r4().Canonical(value) }

// CheckElement is CheckElement of the R4 engine.
func CheckElement(entry string) error { return r4().CheckElement(entry) }
