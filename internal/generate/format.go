package generate

import (
	"encoding/binary"
	"strconv"
)

// This file holds the allocation-free formatting helpers of the hot path:
// ids, FHIR date/dateTime/instant values and fixed-point decimals, each
// appended to a caller-owned []byte.

// id is a resource id in canonical UUID text form.
type id [36]byte

const hexDigits = "0123456789abcdef"

// mix64 is the murmur3 64-bit finalizer. It is a bijection on uint64, which
// is what makes generated ids unique by construction rather than by luck.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// idKeys derives ids from counters. The same (keys, counter) always gives the
// same id, and distinct counters always give distinct ids.
type idKeys struct{ k1, k2 uint64 }

func newIDKeys(seed uint64) idKeys {
	return idKeys{k1: mix64(seed ^ 0x9e3779b97f4a7c15), k2: mix64(seed ^ 0x6a09e667f3bcc909)}
}

// make renders counter c as a version-4-shaped UUID. The 64 bits of
// mix64(c^k1) are spread over 64 of the 122 free bits (so the mapping stays
// injective); the remaining bits are filler from a second hash.
func (k idKeys) make(c uint64) id {
	u := mix64(c ^ k.k1)
	v := mix64(c ^ k.k2)
	hi := u&^0xffff | 0x4000 | (u>>4)&0x0fff
	lo := 1<<63 | (u&0xf)<<58 | v&(1<<58-1)
	return encodeUUID(hi, lo)
}

func encodeUUID(hi, lo uint64) id {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], hi)
	binary.BigEndian.PutUint64(raw[8:], lo)
	var out id
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexDigits[c>>4]
		out[j+1] = hexDigits[c&0xf]
		j += 2
	}
	return out
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's civil_from_days), avoiding time.Time in the hot path.
func civil(days int64) (y int64, m, d int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// floorDiv divides rounding towards negative infinity, so instants before
// 1970 (birth dates) format correctly.
func floorDiv(a, b int64) (q, r int64) {
	q, r = a/b, a%b
	if r < 0 {
		q--
		r += b
	}
	return q, r
}

func append2(b []byte, v int) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}

func append4(b []byte, v int64) []byte {
	return append(b, byte('0'+v/1000%10), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// appendDate appends a FHIR date (YYYY-MM-DD) for days since the epoch.
func appendDate(b []byte, days int64) []byte {
	y, m, d := civil(days)
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	return append2(b, d)
}

func appendClock(b []byte, secOfDay int64) []byte {
	b = append2(b, int(secOfDay/3600))
	b = append(b, ':')
	b = append2(b, int(secOfDay/60%60))
	b = append(b, ':')
	return append2(b, int(secOfDay%60))
}

// appendDateTime appends a FHIR dateTime in UTC to the second
// (YYYY-MM-DDThh:mm:ssZ) for seconds since the epoch.
func appendDateTime(b []byte, sec int64) []byte {
	days, rem := floorDiv(sec, 86400)
	b = appendDate(b, days)
	b = append(b, 'T')
	b = appendClock(b, rem)
	return append(b, 'Z')
}

// appendInstant appends a FHIR instant in UTC with milliseconds
// (YYYY-MM-DDThh:mm:ss.sssZ) for milliseconds since the epoch.
func appendInstant(b []byte, ms int64) []byte {
	sec, milli := floorDiv(ms, 1000)
	days, rem := floorDiv(sec, 86400)
	b = appendDate(b, days)
	b = append(b, 'T')
	b = appendClock(b, rem)
	return append(b, '.', byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000}

// appendFixed appends v / 10^dec as a JSON number with exactly dec decimals
// (a FHIR decimal keeps its precision, so trailing zeros are meaningful).
func appendFixed(b []byte, v int64, dec int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/pow10[dec], 10)
	if dec == 0 {
		return b
	}
	b = append(b, '.')
	frac := v % pow10[dec]
	for p := pow10[dec-1]; p > 0; p /= 10 {
		b = append(b, byte('0'+frac/p%10))
	}
	return b
}

// appendPadded appends v in decimal, left-padded with zeros to width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
