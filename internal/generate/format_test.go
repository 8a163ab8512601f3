package generate

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2100, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	cases := []int64{lo, hi, 0, -1, 1, -86_400_000, 951_782_400_000 /* 2000-02-29 */}
	for range 20000 {
		cases = append(cases, lo+r.Int64N(hi-lo))
	}
	for _, ms := range cases {
		tm := time.UnixMilli(ms).UTC()
		if got, want := string(appendInstant(nil, ms)), tm.Format("2006-01-02T15:04:05.000Z"); got != want {
			t.Fatalf("appendInstant(%d) = %s, want %s", ms, got, want)
		}
		sec := tm.Unix()
		if got, want := string(appendDateTime(nil, sec)), tm.Format("2006-01-02T15:04:05Z"); got != want {
			t.Fatalf("appendDateTime(%d) = %s, want %s", sec, got, want)
		}
		days, _ := floorDiv(sec, day)
		if got, want := string(appendDate(nil, days)), tm.Format("2006-01-02"); got != want {
			t.Fatalf("appendDate(%d) = %s, want %s", days, got, want)
		}
	}
}

func TestAppendFixed(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		dec  int
		want string
	}{
		{0, 0, "0"}, {7, 0, "7"}, {1234, 1, "123.4"}, {5, 2, "0.05"}, {100, 2, "1.00"},
		{-71058880, 6, "-71.058880"}, {-5, 1, "-0.5"}, {42360082, 6, "42.360082"},
	} {
		if got := string(appendFixed(nil, tc.v, tc.dec)); got != tc.want {
			t.Errorf("appendFixed(%d, %d) = %s, want %s", tc.v, tc.dec, got, tc.want)
		}
	}
	if got := string(appendPadded(nil, 42, 5)); got != "00042" {
		t.Errorf("appendPadded(42, 5) = %s, want 00042", got)
	}
}

func TestIDs(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	k := newIDKeys(99)
	seen := map[id]uint64{}
	check := func(c uint64) {
		v := k.make(c)
		if !uuid.Match(v[:]) {
			t.Fatalf("id for counter %#x = %s, not a v4-shaped UUID", c, v[:])
		}
		if prev, dup := seen[v]; dup {
			t.Fatalf("counters %#x and %#x share id %s", prev, c, v[:])
		}
		seen[v] = c
	}
	for i := range uint64(2000) {
		for seq := range uint64(50) {
			check((i+1)<<24 | seq)
		}
	}
	for ty := range uint64(3) {
		for i := range uint64(2000) {
			check(1<<63 | ty<<40 | i)
		}
	}
	if a, b := newIDKeys(1).make(5), newIDKeys(2).make(5); a == b {
		t.Errorf("seeds 1 and 2 give the same id %s", a[:])
	}
}

// TestTablesNeedNoEscaping guards the hot path, which copies table strings
// into JSON verbatim.
func TestTablesNeedNoEscaping(t *testing.T) {
	var all []string
	for _, k := range encKinds {
		all = append(all, k.cc)
	}
	for _, c := range conditions {
		all = append(all, c.cc)
	}
	for _, m := range meds {
		all = append(all, m.cc)
	}
	for _, p := range procs {
		all = append(all, p.cc)
	}
	for _, v := range vaccines {
		all = append(all, v.cc)
	}
	for _, a := range allergies {
		all = append(all, a.cc, `"`+a.category+`"`, `"`+a.criticality+`"`)
	}
	for _, o := range observations {
		all = append(all, o.cc, `{"value":1`+o.tail)
		for _, h := range o.head {
			all = append(all, "{"+h[1:]+"}")
		}
	}
	for _, p := range panels {
		all = append(all, p.cc)
	}
	all = append(all, encounterClasses[:]...)
	all = append(all, encounterClassesDSTU2[:]...)
	all = append(all, encounterClassesSTU3[:]...)
	all = append(all, maritalStatuses[:]...)
	all = append(all, maritalStatusesV3[:]...)
	all = append(all, languages[:]...)
	for _, s := range append(append(append(append(append([]string{}, givenMale[:]...), givenFemale[:]...), families[:]...), streets[:]...), streetSuffixes[:]...) {
		all = append(all, `"`+s+`"`)
	}
	for _, s := range append(append([]string{payerMedicare}, payers[:]...), orgSuffixes[:]...) {
		all = append(all, `"`+s+`"`)
	}
	for _, c := range cities {
		all = append(all, `"`+c.name+`"`, `"`+c.zip+`"`)
	}
	for _, s := range all {
		if !json.Valid([]byte(s)) || !utf8.ValidString(s) {
			t.Errorf("table fragment is not valid JSON: %s", s)
		}
		if strings.Contains(s, `\`) {
			t.Errorf("table fragment needs escaping: %s", s)
		}
	}
}

func TestTables(t *testing.T) {
	if !conditions[firstAcute-1].chronic || conditions[firstAcute].chronic {
		t.Errorf("firstAcute = %d does not split chronic from acute conditions", firstAcute)
	}
	for def, want := range map[int]string{
		condHypertension: "59621000", condPrediabetes: "15777000", condDiabetes: "44054006",
		condObesity: "162864005", condAsthma: "233678006",
	} {
		if got := conditions[def].code; got != want {
			t.Errorf("conditions[%d].code = %s, want %s", def, got, want)
		}
	}
	for _, c := range conditions[firstAcute:] {
		if c.days <= 0 {
			t.Errorf("acute condition %s has no duration", c.code)
		}
	}
	for name, codes := range map[string][]string{
		"encounter": codesOf(encKinds[:], func(k encKind) string { return k.code }),
		"condition": codesOf(conditions[:], func(c condDef) string { return c.code }),
		"med":       codesOf(meds[:], func(m medDef) string { return m.code }),
		"procedure": codesOf(procs[:], func(p procDef) string { return p.code }),
		"vaccine":   codesOf(vaccines[:], func(v vaxDef) string { return v.code }),
		"allergy":   codesOf(allergies[:], func(a allergyDef) string { return a.code }),
		"loinc":     codesOf(observations[:], func(o obsDef) string { return o.code }),
	} {
		seen := map[string]bool{}
		for _, c := range codes {
			if c == "" || seen[c] {
				t.Errorf("%s table: empty or repeated code %q", name, c)
			}
			seen[c] = true
		}
	}
	if got, want := memberLen, len(`{"entity":{"reference":"Patient/00000000-0000-4000-8000-000000000000"}}`); got != want {
		t.Errorf("memberLen = %d, want %d", got, want)
	}
}

func codesOf[T any](xs []T, code func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, code(x))
	}
	return out
}

func TestGroupSpecs(t *testing.T) {
	for _, tc := range []struct{ n, groups int }{
		{0, 3}, {10, 3}, {1999, 3}, {2000, 4}, {2499, 4}, {10000, 20},
	} {
		p, err := newPlan(Options{Patients: tc.n})
		if err != nil {
			t.Fatal(err)
		}
		specs := p.groupSpecs()
		if len(specs) != tc.groups {
			t.Errorf("N=%d: %d Groups, want %d", tc.n, len(specs), tc.groups)
		}
		ids := map[string]bool{}
		for _, g := range specs {
			if ids[g.id] || g.size > tc.n || (tc.n > 0 && g.size < 1) {
				t.Errorf("N=%d: Group %+v repeated or badly sized", tc.n, g)
			}
			ids[g.id] = true
			var got []int
			if err := p.eachMember(rand.New(rand.NewPCG(1, uint64(tc.n))), g.size, func(i int) error {
				got = append(got, i)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != g.size {
				t.Errorf("N=%d: Group %s sampled %d members, want %d", tc.n, g.id, len(got), g.size)
			}
			for j := 1; j < len(got); j++ {
				if got[j] <= got[j-1] || got[j] >= tc.n {
					t.Fatalf("N=%d: Group %s members %v not increasing within range", tc.n, g.id, got)
				}
			}
		}
	}
}
