package auth

import (
	"strings"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// Scope is one SMART system scope (SMART App Launch 2.x, "Scopes for
// requesting clinical data"). Both syntaxes parse to the same permissions:
//
//	v2: system/<Type|*>.<subset of "cruds", in that order>[?param=value&...]
//	v1: system/<Type|*>.<read|write|*>
//
// A v1 scope keeps V1 set so the granted scope string echoes the syntax the
// client used (requirements 6.8, R113).
type Scope struct {
	// Type is a resource type or "*" for every type, current and future.
	Type string
	// Perms are the v2 permission letters in canonical order: v1 .read is
	// "rs", .write is "cud" and .* is "cruds".
	Perms string
	// Query is a v2 search restriction without the "?", e.g.
	// "category=laboratory"; empty for none.
	Query string
	// V1 is set if the scope was written in v1 syntax.
	V1 bool
}

const permOrder = "cruds"

// v1Perms maps SMART v1 permissions to v2 letters (SMART 2.x, "Scopes for
// requesting clinical data", v1 mapping).
var v1Perms = map[string]string{"read": "rs", "write": "cud", "*": "cruds"}

// ParseScope parses a SMART v1 or v2 system scope. Only system/ scopes
// exist for backend services; patient/, user/ and non-clinical scopes fail.
// Permission letters out of order, repeated or unknown fail too (SMART lets
// a server ignore, replace or reject them; rejecting says what is wrong).
// Errors are EINVALID with a client-safe message.
func ParseScope(s string) (Scope, error) {
	rest, ok := strings.CutPrefix(s, "system/")
	if !ok {
		return Scope{}, scopeErrorf(s, "only system/ scopes are supported")
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, scopeErrorf(s, "it has no permissions after the resource type")
	}
	if typ != "*" && !isTypeName(typ) {
		return Scope{}, scopeErrorf(s, "the resource type must be a FHIR resource type name or *")
	}
	if typ != "*" && !fhir.IsResourceType(typ) {
		return Scope{}, scopeErrorf(s, "it names no FHIR R4 resource type")
	}
	perms, query, hasQuery := strings.Cut(perms, "?")
	if p, ok := v1Perms[perms]; ok {
		if hasQuery {
			return Scope{}, scopeErrorf(s, "a v1 scope cannot carry a search restriction")
		}
		return Scope{Type: typ, Perms: p, V1: true}, nil
	}
	if !isPermLetters(perms) {
		return Scope{}, scopeErrorf(s, `the permissions must be letters of "cruds" in that order, or read, write or *`)
	}
	if hasQuery && query == "" {
		return Scope{}, scopeErrorf(s, "the search restriction after ? is empty")
	}
	return Scope{Type: typ, Perms: perms, Query: query}, nil
}

// ParseScopes parses a space-separated scope list (RFC 6749 §3.3).
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Fields(s) {
		sc, err := ParseScope(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// String returns the scope in the syntax it was written in; a v1 scope whose
// permissions have no v1 spelling is written in v2 syntax.
func (s Scope) String() string {
	perms := s.Perms
	if s.V1 {
		for v1, p := range v1Perms {
			if p == s.Perms {
				perms = v1
			}
		}
	}
	if s.Query != "" {
		return "system/" + s.Type + "." + perms + "?" + s.Query
	}
	return "system/" + s.Type + "." + perms
}

// Allows reports whether the scope lets a client export resources of
// resourceType: that needs read and search (v2 "rs"; v1 .read or .*).
// A restricted scope allows the type too; the export applies its Query as
// a filter (R114).
func (s Scope) Allows(resourceType string) bool {
	return (s.Type == "*" || s.Type == resourceType) &&
		strings.Contains(s.Perms, "r") && strings.Contains(s.Perms, "s")
}

// Permits reports whether the scope grants permission perm (one of the
// letters of "cruds") on resourceType without a search restriction. A
// restricted scope permits reads only through the export's filters, and
// never a write.
func (s Scope) Permits(resourceType string, perm byte) bool {
	return (s.Type == "*" || s.Type == resourceType) && s.Query == "" && strings.IndexByte(s.Perms, perm) >= 0
}

// Permits reports whether any of scopes permits perm on resourceType
// (Scope.Permits).
func Permits(scopes []Scope, resourceType string, perm byte) bool {
	for _, s := range scopes {
		if s.Permits(resourceType, perm) {
			return true
		}
	}
	return false
}

// WriteType is the one resource type this server writes: clients create,
// refresh and delete Bulk Cohort Groups (requirements 5.9, 6.8: "Bulk
// Cohort needs system/Group.cud to create or manage").
const WriteType = "Group"

// GrantablePerms returns the permissions of a scope this server may grant:
// read and search of any type, and create, update and delete only of
// WriteType, named as such (system/Group.cud or system/Group.write, not
// system/*.cud) and unrestricted. Every other write permission is narrowed
// away.
func GrantablePerms(s Scope) string {
	if s.Type == WriteType && s.Query == "" {
		return intersectPerms(s.Perms, permOrder)
	}
	return intersectPerms(s.Perms, "rs")
}

// Covers reports whether s grants everything o does: the same type or *,
// every permission of o, and no restriction that o lacks.
func (s Scope) Covers(o Scope) bool {
	if s.Type != "*" && s.Type != o.Type {
		return false
	}
	if s.Query != "" && s.Query != o.Query {
		return false
	}
	return intersectPerms(s.Perms, o.Perms) == o.Perms
}

// FormatScopes joins scopes with spaces, the form of a token response's
// scope field.
func FormatScopes(scopes []Scope) string {
	var b strings.Builder
	for i, s := range scopes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// GrantScopes returns the part of requested that allowed permits, the
// intersection of RFC 6749 §3.3 ("the authorization server MAY fully or
// partially ignore the scope requested by the client"). The rule:
//
//   - A requested scope that one allowed scope covers is granted as
//     requested: system/Observation.rs against system/*.rs or
//     system/*.read is granted as system/Observation.rs.
//   - Otherwise each allowed scope contributes its overlap: the narrower
//     type and the common permissions. A requested system/*.rs against
//     allowed system/Observation.rs and system/Patient.read grants
//     system/Observation.rs and system/Patient.rs, and a requested
//     system/Observation.cruds against system/*.rs grants
//     system/Observation.rs.
//   - Granted scopes keep the syntax of the requested scope (v1 stays v1
//     where the permissions have a v1 spelling), in request order, without
//     duplicates or scopes an earlier grant covers.
//
// A restriction (Query) carries over: an overlap with a restricted scope
// is restricted the same way, and when both scopes are restricted
// differently the grant needs both (their queries joined with "&", which
// AND-s them). So a grant never widens a restriction: a requested
// system/*.rs against allowed system/Observation.rs?category=laboratory
// grants system/Observation.rs?category=laboratory. A restricted scope has
// no v1 spelling.
func GrantScopes(requested, allowed []Scope) []Scope {
	var out []Scope
	add := func(s Scope) {
		for _, g := range out {
			if g.Covers(s) {
				return
			}
		}
		out = append(out, s)
	}
	for _, r := range requested {
		covered := false
		for _, a := range allowed {
			if a.Covers(r) {
				covered = true
				break
			}
		}
		if covered {
			add(r)
			continue
		}
		for _, a := range allowed {
			query := r.Query
			switch {
			case a.Query == "" || a.Query == r.Query:
			case r.Query == "":
				query = a.Query
			default:
				query = r.Query + "&" + a.Query
			}
			typ := r.Type
			switch {
			case r.Type == "*":
				typ = a.Type
			case a.Type != "*" && a.Type != r.Type:
				continue
			}
			perms := intersectPerms(r.Perms, a.Perms)
			if perms == "" {
				continue
			}
			add(Scope{Type: typ, Perms: perms, Query: query, V1: r.V1 && query == "" && hasV1Spelling(perms)})
		}
	}
	return out
}

// intersectPerms returns the letters in both a and b, in canonical order.
func intersectPerms(a, b string) string {
	var out []byte
	for i := range len(permOrder) {
		c := permOrder[i]
		if strings.IndexByte(a, c) >= 0 && strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

func hasV1Spelling(perms string) bool {
	for _, p := range v1Perms {
		if p == perms {
			return true
		}
	}
	return false
}

// isPermLetters reports whether s is a non-empty subsequence of "cruds".
func isPermLetters(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for j := range len(s) {
		k := strings.IndexByte(permOrder[i:], s[j])
		if k < 0 {
			return false
		}
		i += k + 1
	}
	return true
}

// isTypeName reports whether s looks like a FHIR resource type name. Which
// types exist is the export's business; a scope for an unknown type simply
// allows nothing.
func isTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func scopeErrorf(s, why string) error {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return bulk.Errorf(bulk.EINVALID, "Scope %q is not a valid SMART system scope: %s.", s, why)
}

// commonTypeForWildcard is a type with only the search parameters every
// type has (_id, _lastUpdated, _profile, _security, _source, _tag): a
// restriction on a system/*. scope may use those only.
const commonTypeForWildcard = "Basic"

// CheckQuery checks a scope's search restriction with the _typeFilter
// engine that enforces it (requirements 6.8, R114): a single-type query on
// the scope's type (for "*", using only the parameters every type has),
// without result parameters. Returns EINVALID or EUNSUPPORTED with a
// client-safe message; nil for an unrestricted scope.
func (s Scope) CheckQuery() error {
	if s.Query == "" {
		return nil
	}
	typ := s.Type
	if typ == "*" {
		typ = commonTypeForWildcard
	}
	if _, err := search.Parse(typ + "?" + s.Query); err != nil {
		msg := bulk.ErrorMessage(err)
		if s.Type == "*" {
			msg += " A system/*. scope may restrict only by parameters every type has (_id, _lastUpdated, _profile, _security, _source, _tag)."
		}
		return &bulk.Error{Code: bulk.ErrorCode(err), Message: msg, Err: err}
	}
	return nil
}
