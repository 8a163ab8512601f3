package search

import (
	"time"

	"github.com/tidwall/gjson"
)

// Dates are ranges (R4 search.html#date): a value covers the whole interval
// its precision implies (2024-03 is all of March), a Period runs from the
// start of its start to the end of its end, with a missing end or start
// open. Intervals here are half-open, [lo, hi). A date or dateTime without a
// time zone is read in UTC, this server's time zone.

// dateRange is the half-open interval [lo, hi).
type dateRange struct {
	lo, hi time.Time
}

var (
	// minTime and maxTime stand for the open ends of a Period: they lie
	// outside every four-digit year.
	minTime = time.Date(-10000, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(20000, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// Search prefixes (R4 search.html#prefix).
const (
	prefixEq = iota
	prefixNe
	prefixGt
	prefixLt
	prefixGe
	prefixLe
	prefixSa
	prefixEb
	prefixAp
)

var prefixes = map[string]int{
	"eq": prefixEq, "ne": prefixNe, "gt": prefixGt, "lt": prefixLt,
	"ge": prefixGe, "le": prefixLe, "sa": prefixSa, "eb": prefixEb, "ap": prefixAp,
}

// cutPrefix splits a search prefix off s. A value that starts with two
// lower-case letters that are not a prefix keeps them (and then fails to
// parse as a date or number).
func cutPrefix(s string) (int, string) {
	if len(s) >= 2 {
		if p, ok := prefixes[s[:2]]; ok {
			return p, s[2:]
		}
	}
	return prefixEq, s
}

// dateValue is one date search value.
type dateValue struct {
	prefix int
	dateRange
}

// match compares the search range s with each date range of v, the resource
// value, by the R4 rules for the prefix.
func (d dateValue) match(v gjson.Result, _ *path) bool {
	r, ok := resourceRange(v)
	return ok && d.compare(r)
}

func (d dateValue) compare(r dateRange) bool {
	contained := !r.lo.Before(d.lo) && !r.hi.After(d.hi)
	switch d.prefix {
	case prefixEq:
		// The search range fully contains the resource range.
		return contained
	case prefixNe:
		return !contained
	case prefixGt:
		// The range above the search value overlaps the resource range.
		return r.hi.After(d.hi)
	case prefixLt:
		// The range below the search value overlaps the resource range.
		return r.lo.Before(d.lo)
	case prefixGe:
		return r.hi.After(d.hi) || contained
	case prefixLe:
		return r.lo.Before(d.lo) || contained
	case prefixSa:
		// The resource range starts after the search range ends.
		return !r.lo.Before(d.hi)
	case prefixEb:
		// The resource range ends before the search range starts.
		return !r.hi.After(d.lo)
	}
	return false
}

// resourceRange reads the range of a date, dateTime or instant (a string),
// a Period (start/end) or a Timing (its events and repeat.boundsPeriod; only
// the outer limits count).
func resourceRange(v gjson.Result) (dateRange, bool) {
	switch {
	case v.Type == gjson.String:
		return parseDate(v.Str, false)
	case !v.IsObject():
		return dateRange{}, false
	}
	if start, end := v.Get("start"), v.Get("end"); start.Exists() || end.Exists() {
		return periodRange(start, end)
	}
	var r dateRange
	found := false
	add := func(x dateRange) {
		if !found || x.lo.Before(r.lo) {
			r.lo = x.lo
		}
		if !found || x.hi.After(r.hi) {
			r.hi = x.hi
		}
		found = true
	}
	v.Get("event").ForEach(func(_, e gjson.Result) bool {
		if e.Type == gjson.String {
			if x, ok := parseDate(e.Str, false); ok {
				add(x)
			}
		}
		return true
	})
	if b := v.Get("repeat.boundsPeriod"); b.IsObject() {
		if x, ok := periodRange(b.Get("start"), b.Get("end")); ok {
			add(x)
		}
	}
	return r, found
}

func periodRange(start, end gjson.Result) (dateRange, bool) {
	r := dateRange{lo: minTime, hi: maxTime}
	if start.Exists() {
		s, ok := parseDate(start.String(), false)
		if !ok || start.Type != gjson.String {
			return r, false
		}
		r.lo = s.lo
	}
	if end.Exists() {
		e, ok := parseDate(end.String(), false)
		if !ok || end.Type != gjson.String {
			return r, false
		}
		r.hi = e.hi
	}
	return r, true
}

// parseDate parses a FHIR date, dateTime or instant, or a date search value
// (search: true), into the range its precision covers:
//
//	YYYY, YYYY-MM, YYYY-MM-DD
//	YYYY-MM-DDThh:mm[:ss[.fffffffff]][Z|±hh:mm]
//
// Seconds may be left out and the zone may be missing (UTC). In a search
// value a space may stand for the '+' of the zone: an unencoded '+' in a
// query string decodes to a space.
func parseDate(s string, search bool) (dateRange, bool) {
	var r dateRange
	n := len(s)
	num := func(i, w int) (int, bool) { return digitsAt(s, i, w) }
	year, ok := num(0, 4)
	if !ok || year == 0 {
		return r, false
	}
	if n == 4 {
		lo := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(1, 0, 0)}, true
	}
	if s[4] != '-' {
		return r, false
	}
	month, ok := num(5, 2)
	if !ok || month < 1 || month > 12 {
		return r, false
	}
	if n == 7 {
		lo := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(0, 1, 0)}, true
	}
	if n < 10 || s[7] != '-' {
		return r, false
	}
	day, ok := num(8, 2)
	if !ok || day < 1 || day > daysIn(year, month) {
		return r, false
	}
	if n == 10 {
		lo := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return dateRange{lo, lo.AddDate(0, 0, 1)}, true
	}
	if s[10] != 'T' {
		return r, false
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	if !ok1 || !ok2 || s[13] != ':' || hour > 23 || minute > 59 {
		return r, false
	}
	i := 16
	sec, nsec := 0, 0
	precision := time.Minute
	if i < n && s[i] == ':' {
		v, ok := num(i+1, 2)
		if !ok || v > 59 {
			return r, false
		}
		sec, i, precision = v, i+3, time.Second
		if i < n && s[i] == '.' {
			j := i + 1
			for j < n && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if nsec, precision, ok = fraction(s[i+1 : j]); !ok {
				return r, false
			}
			i = j
		}
	}
	loc, ok := parseZone(s[i:], search)
	if !ok {
		return r, false
	}
	lo := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc).UTC()
	return dateRange{lo, lo.Add(precision)}, true
}

// digitsAt returns the w decimal digits of s at i as a number; ok is false
// if s has fewer or they are not all digits.
func digitsAt(s string, i, w int) (int, bool) {
	if i+w > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+w; j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// fraction reads the digits of a fraction of a second: the nanoseconds
// of the first nine, and the precision they give. There must be one.
func fraction(digits string) (nsec int, precision time.Duration, ok bool) {
	if len(digits) == 0 {
		return 0, 0, false
	}
	precision = time.Second
	for k := 0; k < 9; k++ {
		nsec *= 10
		if k < len(digits) {
			nsec += int(digits[k] - '0')
			precision /= 10
		}
	}
	return nsec, precision, true
}

// parseZone reads the zone z that ends a dateTime: none (UTC), Z or
// ±hh:mm. In a search value a space may stand for the '+'.
func parseZone(z string, search bool) (*time.Location, bool) {
	switch {
	case z == "" || z == "Z":
		return time.UTC, true
	case z[0] == '+' || z[0] == '-' || (search && z[0] == ' '):
		oh, ok1 := digitsAt(z, 1, 2)
		om, ok2 := digitsAt(z, 4, 2)
		if !ok1 || !ok2 || len(z) != 6 || z[3] != ':' || oh > 14 || om > 59 {
			return nil, false
		}
		off := oh*3600 + om*60
		if z[0] == '-' {
			off = -off
		}
		return time.FixedZone("", off), true
	default:
		return nil, false
	}
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
