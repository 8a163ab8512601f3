package cohort

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// definition is a posted bulk-cohort-group Group, checked.
type definition struct {
	group        json.RawMessage // the Group without what the server sets
	name         string
	filters      []*search.Filter
	patients     []string
	groups       []string
	refreshEvery time.Duration
}

// MaxDefinitionBytes bounds a posted cohort Group.
const MaxDefinitionBytes = 256 << 10

// serverSet are the Group members the server writes on the stored Group:
// whatever a client posts under them is dropped.
var serverSet = []string{"id", "meta", "member", "quantity", "actual"}

// parseDefinition checks a posted Group against the bulk-cohort-group
// profile (requirements 5.9) as far as this server supports it: type
// person, a name, no characteristic, actual true exactly when members are
// given, member entities that are Patients or Groups on this server, and
// one or more member-filter modifier extensions, each a single-type query
// of the _typeFilter engine on Patient or a Patient-compartment type.
// Unknown modifier extensions are refused, as FHIR requires of modifiers.
// Errors are EINVALID, or EUNSUPPORTED for valid input this server does
// not support, with client-safe messages naming what is wrong.
func parseDefinition(body []byte, base string, minRefresh time.Duration, model *fhir.Model) (*definition, error) {
	g, err := decodeGroup(body)
	if err != nil {
		return nil, err
	}
	d := &definition{}
	actual, err := d.parseHeader(g)
	if err != nil {
		return nil, err
	}
	if err := d.parseMembers(g, base, actual); err != nil {
		return nil, err
	}
	if err := d.parseMemberFilters(g, model); err != nil {
		return nil, err
	}
	kept, err := d.parseExtensions(g, minRefresh)
	if err != nil {
		return nil, err
	}
	for _, k := range serverSet {
		delete(g, k)
	}
	if len(kept) > 0 {
		g["extension"], _ = json.Marshal(kept)
	} else {
		delete(g, "extension")
	}
	if d.group, err = compact(g); err != nil {
		return nil, bulk.Errorf(bulk.EINVALID, "The Group is not valid JSON.")
	}
	return d, nil
}

// decodeGroup reads a posted Group's members, within MaxDefinitionBytes.
func decodeGroup(body []byte) (map[string]json.RawMessage, error) {
	if len(body) > MaxDefinitionBytes {
		// The definition is stored whole, in one DynamoDB item on AWS
		// (400 KB at most).
		return nil, bulk.Errorf(bulk.EINVALID, "The Group is %d bytes; a cohort definition may have at most %d. Bound a large cohort by a Group rather than by listing its members.", len(body), MaxDefinitionBytes)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(body, &g); err != nil || g == nil {
		return nil, bulk.Errorf(bulk.EINVALID, "The request body is not a JSON Group resource.")
	}
	var rt string
	if json.Unmarshal(g["resourceType"], &rt) != nil || rt != "Group" {
		return nil, bulk.Errorf(bulk.EINVALID, "POST [base]/Group takes a Group resource (resourceType Group).")
	}
	return g, nil
}

// parseHeader checks Group.type (person), sets d.name, refuses a
// characteristic and returns Group.actual, which is required.
func (d *definition) parseHeader(g map[string]json.RawMessage) (actual bool, _ error) {
	var typ string
	if err := json.Unmarshal(g["type"], &typ); err != nil || typ == "" {
		return false, bulk.Errorf(bulk.EINVALID, "Group.type is required (bulk-cohort-group): use person.")
	}
	switch typ {
	case "person":
	case "practitioner", "device", "animal", "medication", "substance":
		return false, bulk.Errorf(bulk.EUNSUPPORTED, "Group.type %s is not supported: this server builds cohorts of patients (type person).", typ)
	default:
		return false, bulk.Errorf(bulk.EINVALID, "Group.type %q is not a GroupType code; use person.", clip(typ))
	}
	if err := json.Unmarshal(g["name"], &d.name); err != nil || strings.TrimSpace(d.name) == "" {
		return false, bulk.Errorf(bulk.EINVALID, "Group.name is required (bulk-cohort-group: 1..1).")
	}
	if raw, ok := g["characteristic"]; ok && !isEmptyArray(raw) {
		return false, bulk.Errorf(bulk.EINVALID, "Group.characteristic is not allowed in a bulk-cohort-group (0..0): express criteria as member-filter extensions.")
	}
	if err := json.Unmarshal(g["actual"], &actual); err != nil || g["actual"] == nil {
		return false, bulk.Errorf(bulk.EINVALID, "Group.actual is required: true when member entries bound the cohort, false otherwise.")
	}
	return actual, nil
}

// parseMembers sets d.patients and d.groups from the active members'
// entities: Patients, or Groups whose members bound the cohort. actual
// must be true exactly when members are given.
func (d *definition) parseMembers(g map[string]json.RawMessage, base string, actual bool) error {
	var members []struct {
		Entity *struct {
			Reference string `json:"reference"`
		} `json:"entity"`
		Inactive bool `json:"inactive"`
	}
	if raw, ok := g["member"]; ok {
		if err := json.Unmarshal(raw, &members); err != nil {
			return bulk.Errorf(bulk.EINVALID, "Group.member must be an array of members with an entity reference.")
		}
	}
	for i, m := range members {
		if m.Entity == nil || m.Entity.Reference == "" {
			return bulk.Errorf(bulk.EINVALID, "Group.member[%d] has no entity.reference.", i)
		}
		if m.Inactive {
			continue // a member that left bounds nothing
		}
		if err := d.addMember(i, m.Entity.Reference, base); err != nil {
			return err
		}
	}
	d.patients, d.groups = sortedSet(d.patients), sortedSet(d.groups)
	if len(members) > 0 && len(d.patients)+len(d.groups) == 0 {
		// Members bound the cohort; inactive ones bound it to no one,
		// which is not an unbounded cohort.
		return bulk.Errorf(bulk.EINVALID, "Every Group.member is inactive, so the cohort would have no members; give active members or none.")
	}
	if actual != (len(members) > 0) {
		return bulk.Errorf(bulk.EINVALID, "Group.actual must be true exactly when member entries are given (bulk-cohort-group); it is %v with %d members.", actual, len(members))
	}
	return nil
}

// addMember adds the entity of Group.member[i], a relative reference or
// an absolute one on this server (base), to d.patients or d.groups.
func (d *definition) addMember(i int, entity, base string) error {
	ref := entity
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		rest, ok := strings.CutPrefix(ref, strings.TrimRight(base, "/")+"/")
		if base == "" || !ok {
			return bulk.Errorf(bulk.EINVALID, "Group.member[%d].entity %q is not on this server (%s).", i, clip(ref), base)
		}
		ref = rest
	}
	t, id, ok := fhir.ParseReference(ref)
	switch {
	case !ok:
		return bulk.Errorf(bulk.EINVALID, "Group.member[%d].entity %q is not a reference of the form Patient/[id] or Group/[id].", i, clip(entity))
	case t == "Patient":
		d.patients = append(d.patients, id)
	case t == "Group":
		d.groups = append(d.groups, id)
	default:
		return bulk.Errorf(bulk.EUNSUPPORTED, "Group.member[%d].entity is a %s: this server's cohorts are of patients, bounded by Patients or Groups.", i, t)
	}
	return nil
}

// parseMemberFilters sets d.filters from the modifierExtensions: the
// member-filters, and nothing else; at least one.
func (d *definition) parseMemberFilters(g map[string]json.RawMessage, model *fhir.Model) error {
	var mods []json.RawMessage
	if raw, ok := g["modifierExtension"]; ok {
		if err := json.Unmarshal(raw, &mods); err != nil {
			return bulk.Errorf(bulk.EINVALID, "Group.modifierExtension must be an array of extensions.")
		}
	}
	for i, raw := range mods {
		f, err := parseMemberFilter(i, raw, model)
		if err != nil {
			return err
		}
		d.filters = append(d.filters, f)
	}
	if len(d.filters) == 0 {
		return bulk.Errorf(bulk.EINVALID, "A bulk-cohort-group needs at least one member-filter modifier extension (%s) with a FHIR query such as Condition?code=http://snomed.info/sct|44054006.", bulk.MemberFilterURL)
	}
	return nil
}

// parseMemberFilter parses Group.modifierExtension[i], which must be a
// member-filter with a FHIR query expression.
func parseMemberFilter(i int, raw json.RawMessage, model *fhir.Model) (*search.Filter, error) {
	var ext struct {
		URL             string `json:"url"`
		ValueExpression *struct {
			Language   string `json:"language"`
			Expression string `json:"expression"`
		} `json:"valueExpression"`
	}
	if err := json.Unmarshal(raw, &ext); err != nil {
		return nil, bulk.Errorf(bulk.EINVALID, "Group.modifierExtension[%d] is not an extension.", i)
	}
	if ext.URL != bulk.MemberFilterURL {
		return nil, bulk.Errorf(bulk.EUNSUPPORTED, "Group.modifierExtension[%d] %q is not understood by this server; a modifier extension cannot be ignored.", i, clip(ext.URL))
	}
	v := ext.ValueExpression
	switch {
	case v == nil:
		return nil, bulk.Errorf(bulk.EINVALID, "member-filter %d has no valueExpression.", i+1)
	case v.Language != bulk.FHIRQueryLanguage:
		return nil, bulk.Errorf(bulk.EINVALID, "member-filter %d has language %q; use %s.", i+1, clip(v.Language), bulk.FHIRQueryLanguage)
	case strings.TrimSpace(v.Expression) == "":
		return nil, bulk.Errorf(bulk.EINVALID, "member-filter %d has an empty expression.", i+1)
	}
	return parseFilter(model, strings.TrimSpace(v.Expression))
}

// parseExtensions sets d.refreshEvery from the refresh interval extension
// (Tranche's) and returns the extensions to keep: members-refreshed is the
// server's and goes.
func (d *definition) parseExtensions(g map[string]json.RawMessage, minRefresh time.Duration) ([]json.RawMessage, error) {
	var exts []json.RawMessage
	if raw, ok := g["extension"]; ok {
		if err := json.Unmarshal(raw, &exts); err != nil {
			return nil, bulk.Errorf(bulk.EINVALID, "Group.extension must be an array of extensions.")
		}
	}
	kept := exts[:0:0]
	for _, raw := range exts {
		var ext struct {
			URL           string          `json:"url"`
			ValueDuration json.RawMessage `json:"valueDuration"`
		}
		_ = json.Unmarshal(raw, &ext)
		switch ext.URL {
		case bulk.MembersRefreshedURL:
			continue
		case bulk.RefreshIntervalURL:
			every, err := parseDuration(ext.ValueDuration)
			if err != nil {
				return nil, err
			}
			if every < minRefresh {
				return nil, bulk.Errorf(bulk.EINVALID, "The refresh interval %v is shorter than this server's minimum, %v.", every, minRefresh)
			}
			d.refreshEvery = every
		}
		kept = append(kept, raw)
	}
	return kept, nil
}

// parseFilter parses one member-filter query with the _typeFilter engine
// of the store's release (internal/search): a single-type search on
// Patient or a type of the Patient compartment (but Group), without result
// parameters. Errors are EINVALID or EUNSUPPORTED and name the offending
// parameter (requirements 5.9: unsupported search parameters SHALL fail
// the create).
func parseFilter(model *fhir.Model, query string) (*search.Filter, error) {
	f, err := search.For(model.Defs().Version).Parse(query)
	if err != nil {
		msg := strings.Replace(bulk.ErrorMessage(err), "_typeFilter", "member-filter", 1)
		msg = strings.ReplaceAll(msg, "in _typeFilter", "in a member-filter")
		msg = strings.ReplaceAll(msg, "each _typeFilter", "each member-filter")
		return nil, &bulk.Error{Code: bulk.ErrorCode(err), Message: msg, Err: err}
	}
	if t := f.Type(); t != "Patient" && (t == "Group" || !model.IsPatientCompartmentType(t)) {
		return nil, bulk.Errorf(bulk.EUNSUPPORTED, "member-filter %q: %s is not Patient or a type of the Patient compartment, so it selects no patients.", clip(query), t)
	}
	return f, nil
}

// parseDuration reads a FHIR Duration (UCUM s, min, h, d or wk).
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var d struct {
		Value  *float64 `json:"value"`
		Code   string   `json:"code"`
		Unit   string   `json:"unit"`
		System string   `json:"system"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &d) != nil || d.Value == nil {
		return 0, bulk.Errorf(bulk.EINVALID, "The %s extension needs a valueDuration with a value and a UCUM code (min, h, d or wk).", bulk.RefreshIntervalURL)
	}
	code := d.Code
	if code == "" {
		code = d.Unit
	}
	units := map[string]time.Duration{"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "wk": 7 * 24 * time.Hour}
	u, ok := units[code]
	if !ok || *d.Value <= 0 || math.IsInf(*d.Value, 0) || *d.Value*float64(u) > float64(366*24*time.Hour) {
		return 0, bulk.Errorf(bulk.EINVALID, "The refresh interval must be a positive valueDuration of at most a year in s, min, h, d or wk (UCUM codes).")
	}
	return time.Duration(*d.Value * float64(u)).Round(time.Second), nil
}

// groupBody builds the stored Group: the definition with the id, meta
// (lastUpdated, the profile), the members-refreshed extension, actual,
// quantity and the members. Keys come in a fixed order, so the same
// membership at the same times gives the same bytes.
func groupBody(c *bulk.Cohort, members []string, refreshed, lastUpdated time.Time) ([]byte, error) {
	var g map[string]json.RawMessage
	if err := json.Unmarshal(c.Group, &g); err != nil {
		return nil, fmt.Errorf("cohort %s: stored definition: %w", c.ID, err)
	}
	var exts []json.RawMessage
	if raw, ok := g["extension"]; ok {
		_ = json.Unmarshal(raw, &exts)
	}
	refreshedExt, _ := json.Marshal(map[string]string{"url": bulk.MembersRefreshedURL, "valueDateTime": instant(refreshed)})
	exts = append([]json.RawMessage{refreshedExt}, exts...)
	meta, _ := json.Marshal(map[string]any{"lastUpdated": instant(lastUpdated), "profile": []string{bulk.CohortProfile}})

	var b bytes.Buffer
	b.Grow(64*len(members) + len(c.Group) + 256)
	first := true
	field := func(k string, v []byte) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('{')
	field("resourceType", []byte(`"Group"`))
	idb, _ := json.Marshal(c.ID)
	field("id", idb)
	field("meta", meta)
	extb, _ := json.Marshal(exts)
	field("extension", extb)
	if v, ok := g["modifierExtension"]; ok {
		field("modifierExtension", v)
	}
	var rest []string
	for k := range g {
		switch k {
		case "resourceType", "id", "meta", "extension", "modifierExtension", "member", "quantity", "actual":
		default:
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		field(k, g[k])
	}
	if len(members) > 0 {
		field("actual", []byte("true"))
	} else {
		field("actual", []byte("false"))
	}
	field("quantity", []byte(fmt.Sprint(len(members))))
	if len(members) > 0 {
		if !first {
			b.WriteByte(',')
		}
		b.WriteString(`"member":[`)
		for i, m := range members {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"entity":{"reference":`)
			if fhir.IsID(m) { // letters, digits, - and .: nothing to escape
				b.WriteString(`"Patient/` + m + `"`)
			} else {
				ref, _ := json.Marshal("Patient/" + m)
				b.Write(ref)
			}
			b.WriteString(`}}`)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// instant formats t as a FHIR instant in UTC with milliseconds, as the
// store's stamps are.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// compact marshals g compactly with its keys sorted.
func compact(g map[string]json.RawMessage) (json.RawMessage, error) {
	raw, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func isEmptyArray(raw json.RawMessage) bool {
	var a []json.RawMessage
	return json.Unmarshal(raw, &a) == nil && len(a) == 0
}

func sortedSet(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(ss)))
}

// clip shortens client input echoed in a message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
