package search

import (
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// quantityValue is one quantity search value (R4 search.html#quantity):
// [prefix]number[|system|code]. With an empty system the code is compared
// with both Quantity.code and Quantity.unit. Only Quantity-shaped values
// (Quantity, Age, Duration) are compared; Range and SampledData are not.
type quantityValue struct {
	prefix       int
	value        float64
	lo, hi       float64 // the range the number's precision implies
	system, code string
}

func parseQuantity(raw string) (quantityValue, bool) {
	var q quantityValue
	parts := splitEscaped(raw, '|', 3)
	var num string
	q.prefix, num = cutPrefix(parts[0])
	if q.prefix == prefixAp {
		return q, false
	}
	if !isDecimal(num) {
		return q, false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return q, false
	}
	q.value = v
	half := 0.5 * math.Pow10(-decimals(num))
	q.lo, q.hi = v-half, v+half
	switch len(parts) {
	case 1:
	case 3:
		q.system, q.code = unescape(parts[1]), unescape(parts[2])
	default:
		return q, false
	}
	return q, true
}

// isDecimal reports whether s is a FHIR decimal, optionally with an
// exponent: -?\d+(\.\d+)?([eE][+-]?\d+)?
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}

// decimals is the number of significant decimal places of a decimal:
// 5.40 → 2, 100 → 0, 1.5e2 → -1.
func decimals(s string) int {
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	d := 0
	if _, frac, ok := strings.Cut(mant, "."); ok {
		d = len(frac)
	}
	if exp != "" {
		e, err := strconv.Atoi(exp)
		if err != nil || e > 400 || e < -400 {
			return 0
		}
		d -= e
	}
	return d
}

func (q quantityValue) match(v gjson.Result, _ *path) bool {
	if !v.IsObject() {
		return false
	}
	val := v.Get("value")
	if val.Type != gjson.Number {
		return false
	}
	if q.code != "" || q.system != "" {
		code := v.Get("code").String()
		if q.system != "" {
			if v.Get("system").String() != q.system || (q.code != "" && code != q.code) {
				return false
			}
		} else if code != q.code && v.Get("unit").String() != q.code {
			return false
		}
	}
	x := val.Float()
	switch q.prefix {
	case prefixEq:
		return x >= q.lo && x < q.hi
	case prefixNe:
		return !(x >= q.lo && x < q.hi)
	case prefixGt:
		return x > q.value
	case prefixLt:
		return x < q.value
	case prefixGe:
		return x >= q.value
	case prefixLe:
		return x <= q.value
	case prefixSa:
		return x >= q.hi
	case prefixEb:
		return x < q.lo
	}
	return false
}
