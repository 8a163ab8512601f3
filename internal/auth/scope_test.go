package auth_test

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want auth.Scope
		str  string // String(); "" means in
	}{
		{in: "system/*.rs", want: auth.Scope{Type: "*", Perms: "rs"}},
		{in: "system/Observation.rs", want: auth.Scope{Type: "Observation", Perms: "rs"}},
		{in: "system/Patient.cruds", want: auth.Scope{Type: "Patient", Perms: "cruds"}},
		{in: "system/Group.cud", want: auth.Scope{Type: "Group", Perms: "cud"}},
		{in: "system/Patient.r", want: auth.Scope{Type: "Patient", Perms: "r"}},
		{in: "system/*.read", want: auth.Scope{Type: "*", Perms: "rs", V1: true}},
		{in: "system/Observation.write", want: auth.Scope{Type: "Observation", Perms: "cud", V1: true}},
		{in: "system/*.*", want: auth.Scope{Type: "*", Perms: "cruds", V1: true}},
		{in: "system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			want: auth.Scope{Type: "Observation", Perms: "rs", Query: "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}},
	} {
		got, err := auth.ParseScope(tc.in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tc.in, err)
			continue
		}
		if diff := gocmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseScope(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseScope(%q).String() = %q, want the input", tc.in, s)
		}
	}
	for _, in := range []string{
		"", "system", "system/", "system/*", "system/*.", "system/Observation",
		"system/*.sr", "system/*.rrs", "system/*.x", "system/*.RS", "system/*.Read",
		"system/observation.rs", "system/Obs-ervation.rs", "system/.rs",
		"patient/*.rs", "user/*.read", "openid", "launch", "*.rs",
		"system/*.read?category=x", "system/*.rs?",
	} {
		if _, err := auth.ParseScope(in); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("ParseScope(%q) error = %v, want %s", in, err, bulk.EINVALID)
		}
	}
}

func TestScopeAllows(t *testing.T) {
	for _, tc := range []struct {
		scope, typ string
		want       bool
	}{
		{"system/*.rs", "Observation", true},
		{"system/*.read", "Patient", true},
		{"system/*.*", "Patient", true},
		{"system/*.cruds", "Patient", true},
		{"system/Observation.rs", "Observation", true},
		{"system/Observation.rs", "Patient", false},
		{"system/Observation.read", "Observation", true},
		{"system/*.r", "Observation", false}, // export needs search too
		{"system/*.s", "Observation", false},
		{"system/*.write", "Observation", false},
		{"system/*.cud", "Observation", false},
		{"system/Observation.rs?category=laboratory", "Observation", true},
	} {
		s, err := auth.ParseScope(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Allows(tc.typ); got != tc.want {
			t.Errorf("ParseScope(%q).Allows(%q) = %v, want %v", tc.scope, tc.typ, got, tc.want)
		}
	}
}

func TestGrantScopes(t *testing.T) {
	for _, tc := range []struct {
		name, requested, allowed, want string
	}{
		{"Exact", "system/*.rs", "system/*.rs", "system/*.rs"},
		{"V1Echoed", "system/*.read", "system/*.rs", "system/*.read"},
		{"V2AgainstV1", "system/*.rs", "system/*.read", "system/*.rs"},
		{"TypeUnderWildcard", "system/Observation.rs", "system/*.rs", "system/Observation.rs"},
		{"TypeUnderV1Wildcard", "system/Observation.rs", "system/*.read", "system/Observation.rs"},
		{"V1TypeUnderWildcard", "system/Observation.read", "system/*.rs", "system/Observation.read"},
		{"WildcardNarrowed", "system/*.rs", "system/Observation.rs system/Patient.read", "system/Observation.rs system/Patient.rs"},
		{"V1WildcardNarrowed", "system/*.read", "system/Observation.rs system/Patient.read", "system/Observation.read system/Patient.read"},
		{"PermsNarrowed", "system/Observation.cruds", "system/*.rs", "system/Observation.rs"},
		{"V1PermsNarrowed", "system/*.*", "system/*.rs", "system/*.read"},
		{"V1NoSpelling", "system/*.read", "system/*.r", "system/*.r"},
		{"NothingInCommon", "system/*.cud", "system/*.rs", ""},
		{"OtherType", "system/Observation.rs", "system/Patient.rs", ""},
		{"SomeOfMany", "system/Observation.rs system/Condition.rs", "system/Observation.rs", "system/Observation.rs"},
		{"NoDuplicates", "system/Observation.rs system/Observation.read system/*.rs", "system/Observation.rs", "system/Observation.rs"},
		{"CoveredByEarlier", "system/*.rs system/Observation.rs", "system/*.rs", "system/*.rs"},
		{"RestrictedRequestNotWidened", "system/Observation.rs?category=x", "system/*.rs", "system/Observation.rs?category=x"},
		{"RestrictedAllowedNarrows", "system/Observation.rs", "system/Observation.rs?category=x", "system/Observation.rs?category=x"},
		{"WildcardAgainstRestricted", "system/*.rs", "system/Observation.rs?category=x", "system/Observation.rs?category=x"},
		{"V1AgainstRestricted", "system/*.read", "system/Observation.rs?category=x", "system/Observation.rs?category=x"},
		{"BothRestricted", "system/Observation.rs?code=1", "system/*.rs?_tag=t", "system/Observation.rs?code=1&_tag=t"},
		{"RestrictedWildcardNarrowed", "system/*.rs?_tag=t", "system/Observation.rs", "system/Observation.rs?_tag=t"},
		{"Empty", "", "system/*.rs", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := auth.ParseScopes(tc.requested)
			if err != nil {
				t.Fatal(err)
			}
			allowed, err := auth.ParseScopes(tc.allowed)
			if err != nil {
				t.Fatal(err)
			}
			if got := auth.FormatScopes(auth.GrantScopes(req, allowed)); got != tc.want {
				t.Errorf("GrantScopes(%q, %q) = %q, want %q", tc.requested, tc.allowed, got, tc.want)
			}
		})
	}
}

func TestScopeCheckQuery(t *testing.T) {
	for _, tc := range []struct {
		scope string
		ok    bool
	}{
		{"system/Observation.rs", true},
		{"system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true},
		{"system/Observation.rs?category=laboratory&status=final,amended", true},
		{"system/*.rs?_tag=http://example.org|research", true},
		{"system/*.rs?category=laboratory", false}, // not every type has category
		{"system/Observation.rs?_sort=date", false},
		{"system/Observation.rs?nonsense=1", false},
		{"system/Observation.rs?date=notadate", false},
	} {
		sc, err := auth.ParseScope(tc.scope)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", tc.scope, err)
		}
		if err := sc.CheckQuery(); (err == nil) != tc.ok {
			t.Errorf("ParseScope(%q).CheckQuery() = %v, want ok %v", tc.scope, err, tc.ok)
		} else if err != nil && bulk.ErrorMessage(err) == "Internal error." {
			t.Errorf("ParseScope(%q).CheckQuery() = %v, want a client-safe message", tc.scope, err)
		}
	}
}
