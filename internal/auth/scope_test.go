package auth_test

import (
	"context"
	"strings"
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

// TestGrantablePerms: this server writes only Bulk Cohort Groups
// (requirements 5.9, 6.8): create, update and delete are grantable on
// system/Group only, named as such and unrestricted; every other scope
// keeps its read part.
func TestGrantablePerms(t *testing.T) {
	for _, tc := range []struct{ scope, want string }{
		{"system/Group.cud", "cud"},
		{"system/Group.write", "cud"},
		{"system/Group.cruds", "cruds"},
		{"system/Group.*", "cruds"},
		{"system/Group.rs", "rs"},
		{"system/Group.c", "c"},
		{"system/Group.cruds?name=x", "rs"}, // a restricted write is no write
		{"system/*.cud", ""},
		{"system/*.write", ""},
		{"system/*.cruds", "rs"},
		{"system/Patient.cud", ""},
		{"system/Observation.write", ""},
		{"system/Observation.cruds", "rs"},
	} {
		s, err := auth.ParseScope(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := auth.GrantablePerms(s); got != tc.want {
			t.Errorf("GrantablePerms(%q) = %q, want %q", tc.scope, got, tc.want)
		}
	}
}

func TestScopePermits(t *testing.T) {
	for _, tc := range []struct {
		scopes string
		perm   byte
		want   bool
	}{
		{"system/Group.cud", 'c', true},
		{"system/Group.write", 'd', true},
		{"system/Group.rs", 'c', false},
		{"system/*.rs system/Group.d", 'd', true},
		{"system/*.rs system/Group.d", 'c', false},
		{"system/Group.cruds?name=x", 'c', false},
		{"system/Observation.cud", 'c', false},
	} {
		scopes, err := auth.ParseScopes(tc.scopes)
		if err != nil {
			t.Fatal(err)
		}
		if got := auth.Permits(scopes, "Group", tc.perm); got != tc.want {
			t.Errorf("Permits(%q, Group, %c) = %v, want %v", tc.scopes, tc.perm, got, tc.want)
		}
	}
}

// TestTokenGrantsGroupWritesOnly: the token endpoint grants Group writes
// (system/Group.cud, system/Group.write) to a client registered with them,
// and still narrows away or refuses every other write, whatever the
// client's registration allows.
func TestTokenGrantsGroupWritesOnly(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.addClient(t, &bulk.Client{ID: "rw", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/*.cruds"}})
	h.addClient(t, &bulk.Client{ID: "ro", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/*.rs"}})
	h.addClient(t, &bulk.Client{ID: "gw", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/*.rs", "system/Group.cud"}})
	h.addClient(t, &bulk.Client{ID: "rg", JWKS: jwks(jwk(ecKey, "e1")), Scopes: []string{"system/Group.cruds?_id=g1"}})
	for _, tc := range []struct{ client, scope, want, err string }{
		{client: "rw", scope: "system/*.rs system/Group.cud", want: "system/*.rs system/Group.cud"},
		{client: "rw", scope: "system/Group.write system/*.read", want: "system/Group.write system/*.read"},
		{client: "rw", scope: "system/Group.*", want: "system/Group.*"},
		{client: "rw", scope: "system/*.cruds", want: "system/*.rs"},
		{client: "rw", scope: "system/Patient.cud system/Group.cud", want: "system/Group.cud"},
		{client: "rw", scope: "system/Observation.write system/Group.rs", want: "system/Group.rs"},
		{client: "rw", scope: "system/*.cud", err: "invalid_scope"},
		{client: "rw", scope: "system/*.write", err: "invalid_scope"},
		{client: "gw", scope: "system/Group.cud system/*.rs", want: "system/Group.cud system/*.rs"},
		{client: "gw", scope: "system/*.cruds", want: "system/*.rs"}, // writes are asked for by name
		// A client registered read-only gets no write, on Group either.
		{client: "ro", scope: "system/Group.cud", err: "invalid_scope"},
		{client: "ro", scope: "system/Group.cruds", want: "system/Group.rs"},
		// A restricted registration narrows a write to a restricted read.
		{client: "rg", scope: "system/Group.cud", err: "invalid_scope"},
		{client: "rg", scope: "system/Group.cruds", want: "system/Group.rs?_id=g1"},
	} {
		res, err := h.a.Token(ctx, form(sign("ES384", ecKey, header("ES384", "e1"), h.claims(tc.client)), tc.scope), tokenURL)
		if tc.err != "" {
			wantOAuth(t, err, tc.err)
			continue
		}
		if err != nil {
			t.Errorf("Token(%s, %q): %v", tc.client, tc.scope, err)
			continue
		}
		if res.Scope != tc.want {
			t.Errorf("Token(%s, %q) scope = %q, want %q", tc.client, tc.scope, res.Scope, tc.want)
		}
		// The access token carries what was granted, and only that.
		g, err := h.a.Verify(ctx, res.AccessToken)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		writes := auth.Permits(g.Scopes, "Group", 'c')
		if want := strings.Contains(tc.want, "Group.cud") || strings.Contains(tc.want, "Group.write") || strings.Contains(tc.want, "Group.*"); writes != want {
			t.Errorf("Token(%s, %q): Group create = %v, want %v", tc.client, tc.scope, writes, want)
		}
		for _, typ := range []string{"Patient", "Observation", "Condition"} {
			for _, p := range []byte("cud") {
				if auth.Permits(g.Scopes, typ, p) {
					t.Errorf("Token(%s, %q) grants %c on %s", tc.client, tc.scope, p, typ)
				}
			}
		}
	}
}
