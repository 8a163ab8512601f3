package codegen

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The model of one release, as the generated tables hold it.

type model struct {
	rel    release
	types  []*typeModel // concrete resource types, sorted
	byName map[string]*typeModel
	// abstract holds the abstract resource types (Resource, DomainResource,
	// R5's CanonicalResource and MetadataResource); parent the base type of
	// every resource type.
	abstract map[string]bool
	parent   map[string]string
	notes    []string // data oddities, written into the generated file
	lists    *lists   // long string lists, while emitting
	// droppedAlts are expression alternatives left out because they name
	// an element the type does not have.
	droppedAlts []string
}

type typeModel struct {
	name     string
	elems    []*elem // the snapshot's elements but the root, in order
	byPath   map[string]*elem
	parents  map[string]bool // paths with child elements in the snapshot
	top      []*elem
	params   []*paramModel // sorted by name
	byParam  map[string]*paramModel
	inComp   bool
	compPars []compParam
}

type elem struct {
	path       string // relative to the resource: "value[x]", "component.code"
	min        int
	max        string
	types      []string
	targets    []string
	contentRef string // relative path of the element whose definition this one reuses
	nameRef    bool   // DSTU2 nameReference: reuses another element's definition
	modifier   bool
	summary    bool
}

type paramModel struct {
	id          string
	name        string
	typ         string
	expr        string
	paths       []pathModel
	targets     []string
	unsupported string
}

type pathModel struct {
	path, target, whereAt, whereKey, whereValue string
}

type compParam struct {
	name    string
	paths   []string
	chained bool
}

const sdPrefix = "http://hl7.org/fhir/StructureDefinition/"

// dateTypes are the element types whose values are dates or periods.
var dateTypes = []string{"date", "dateTime", "instant", "Period"}

func buildModel(specDir string, rel release) (*model, error) {
	dir := filepath.Join(specDir, rel.dir)
	var pkg packageJSON
	if err := readJSON(filepath.Join(dir, "package.json"), &pkg); err != nil {
		return nil, err
	}
	if strings.TrimPrefix(pkg.Name, "@hl7/") != rel.pkg || pkg.Version != rel.version {
		return nil, fmt.Errorf("%s: package is %s@%s, want %s@%s", dir, pkg.Name, pkg.Version, rel.pkg, rel.version)
	}
	m := &model{rel: rel, byName: map[string]*typeModel{}, abstract: map[string]bool{}, parent: map[string]string{}}

	var sds bundleJSON[structureDefinitionJSON]
	if err := readGzipJSON(filepath.Join(dir, "structuredefinitions.json.gz"), &sds); err != nil {
		return nil, err
	}
	for _, e := range sds.Entry {
		sd := e.Resource
		if sd.Kind != "resource" {
			continue
		}
		name := sd.Type
		if name == "" {
			name = sd.Name // DSTU2 has no type: a base definition's name is its type
		}
		if sd.URL != sdPrefix+name {
			return nil, fmt.Errorf("%s: StructureDefinition %s has url %s", rel.dir, name, sd.URL)
		}
		base := sd.BaseDefinition
		if base == "" {
			base = sd.Base
		}
		if base != "" {
			m.parent[name] = strings.TrimPrefix(base, sdPrefix)
		}
		if sd.Abstract {
			m.abstract[name] = true
			continue
		}
		t, err := buildType(name, sd.Snapshot.Element)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel.dir, err)
		}
		m.types = append(m.types, t)
		m.byName[name] = t
	}
	sort.Slice(m.types, func(i, j int) bool { return m.types[i].name < m.types[j].name })

	if err := m.buildSearchParams(dir); err != nil {
		return nil, err
	}
	if err := m.buildCompartment(dir); err != nil {
		return nil, err
	}
	return m, nil
}

func buildType(name string, elements []elementJSON) (*typeModel, error) {
	t := &typeModel{name: name, byPath: map[string]*elem{}, parents: map[string]bool{}, byParam: map[string]*paramModel{}}
	if len(elements) == 0 || elements[0].Path != name {
		return nil, fmt.Errorf("%s: the snapshot does not start with the root element", name)
	}
	for _, ej := range elements[1:] {
		rel, ok := strings.CutPrefix(ej.Path, name+".")
		if !ok {
			return nil, fmt.Errorf("%s: element %s is outside the type", name, ej.Path)
		}
		if t.byPath[rel] != nil {
			return nil, fmt.Errorf("%s: element %s is defined twice (a slice?)", name, ej.Path)
		}
		e := &elem{path: rel, min: ej.Min, max: ej.Max, modifier: ej.IsModifier, summary: ej.IsSummary, nameRef: ej.NameReference != ""}
		if ej.ContentReference != "" {
			ref, ok := strings.CutPrefix(ej.ContentReference, "#"+name+".")
			if !ok {
				// R5 writes canonical content references.
				ref, ok = strings.CutPrefix(ej.ContentReference, sdPrefix+name+"#"+name+".")
			}
			if !ok {
				return nil, fmt.Errorf("%s: element %s has contentReference %s", name, ej.Path, ej.ContentReference)
			}
			e.contentRef = ref
		}
		for _, tj := range ej.Type {
			code := typeCode(tj)
			if !slices.Contains(e.types, code) {
				e.types = append(e.types, code)
			}
			targets, err := strings1(tj.TargetProfile)
			if err != nil {
				return nil, fmt.Errorf("%s: %s targetProfile: %w", name, ej.Path, err)
			}
			if len(targets) == 0 && code == "Reference" {
				if targets, err = strings1(tj.Profile); err != nil { // DSTU2
					return nil, fmt.Errorf("%s: %s profile: %w", name, ej.Path, err)
				}
			}
			for _, p := range targets {
				p = strings.TrimPrefix(p, sdPrefix)
				if !slices.Contains(e.targets, p) {
					e.targets = append(e.targets, p)
				}
			}
		}
		t.elems = append(t.elems, e)
		t.byPath[rel] = e
		if i := strings.LastIndexByte(rel, '.'); i >= 0 {
			t.parents[rel[:i]] = true
		} else {
			t.top = append(t.top, e)
		}
	}
	return t, nil
}

// typeCode is the FHIR type of an element type: R4 and R5 write primitive
// ids as System types named by an extension.
func typeCode(tj typeJSON) string {
	for _, x := range tj.Extension {
		if x.URL == sdPrefix+"structuredefinition-fhir-type" {
			if v := x.ValueURL + x.ValueURI; v != "" {
				return v
			}
		}
	}
	if s, ok := strings.CutPrefix(tj.Code, "http://hl7.org/fhirpath/System."); ok && s != "" {
		return strings.ToLower(s[:1]) + s[1:]
	}
	return tj.Code
}

// descends reports whether typ is base or derives from it.
func (m *model) descends(typ, base string) bool {
	for seen := 0; typ != "" && seen < 10; seen++ {
		if typ == base {
			return true
		}
		typ = m.parent[typ]
	}
	return false
}

func (m *model) note(format string, args ...any) {
	m.notes = append(m.notes, fmt.Sprintf(format, args...))
}

// buildSearchParams reads the release's SearchParameters into each type's
// params: per type and name, the best of the definitions (prefer), with a
// note of those left out.
func (m *model) buildSearchParams(dir string) error {
	var sps bundleJSON[searchParameterJSON]
	if err := readGzipJSON(filepath.Join(dir, "searchparameters.json.gz"), &sps); err != nil {
		return err
	}
	candidates := map[*typeModel]map[string][]*paramModel{}
	for _, e := range sps.Entry {
		sp := e.Resource
		// Example definitions (the spec's SearchParameter examples) are
		// not part of any resource's search interface.
		if sp.ID == "example" || strings.HasPrefix(sp.ID, "example-") {
			continue
		}
		if sp.URL != "http://hl7.org/fhir/SearchParameter/"+sp.ID {
			return fmt.Errorf("%s: SearchParameter %s has url %s, not one derived from its id", m.rel.dir, sp.ID, sp.URL)
		}
		bases, err := strings1(sp.Base)
		if err != nil {
			return fmt.Errorf("%s: SearchParameter %s base: %w", m.rel.dir, sp.ID, err)
		}
		var alts []alternative
		switch {
		case sp.Expression != "":
			alts = parseFHIRPath(sp.Expression)
		case sp.XPath != "" && m.rel.dir == "dstu2":
			alts = parseXPath(sp.XPath)
		}
		for _, t := range m.types {
			if !slices.ContainsFunc(bases, func(b string) bool { return m.descends(t.name, b) }) {
				continue // not a parameter of t
			}
			p := m.paramOf(t, sp, alts)
			if candidates[t] == nil {
				candidates[t] = map[string][]*paramModel{}
			}
			candidates[t][p.name] = append(candidates[t][p.name], p)
		}
	}
	m.chooseParams(candidates)
	return nil
}

// paramOf is SearchParameter sp, whose expression's alternatives are
// alts, as a parameter of t: the element paths of the alternatives for t,
// or why it is unsupported. Alternatives that name no element of t are
// left out, and noted in m.droppedAlts.
func (m *model) paramOf(t *typeModel, sp searchParameterJSON, alts []alternative) *paramModel {
	p := &paramModel{id: sp.ID, name: sp.Code, typ: sp.Type, targets: sp.Target}
	var texts, dropped []string
	unrooted := ""
	for _, a := range alts {
		relative := a.root != "" && m.byName[a.root] == nil && !m.abstract[a.root]
		switch {
		case relative && a.err == nil:
			// "name | alias": relative to the resource.
		case a.root == "" || relative:
			if unrooted == "" {
				unrooted = fmt.Sprintf("%s: %v", a.text, a.err)
			}
			continue
		case a.root != t.name && !(m.abstract[a.root] && m.descends(t.name, a.root)):
			continue // an alternative for another type
		}
		texts = append(texts, a.text)
		if p.unsupported != "" {
			continue
		}
		if a.err != nil {
			p.unsupported = fmt.Sprintf("%s: %v", a.text, a.err)
			continue
		}
		segs := a.segs
		if relative {
			segs = append([]seg{{kind: segField, name: a.root}}, a.segs...)
		}
		pm, err := t.resolve(segs)
		var noElem noElementError
		switch {
		case errors.As(err, &noElem):
			dropped = append(dropped, fmt.Sprintf("%s (%v)", a.text, err))
		case err != nil:
			p.unsupported = fmt.Sprintf("%s: %v", a.text, err)
		case !slices.Contains(p.paths, pm):
			p.paths = append(p.paths, pm)
		}
	}
	p.expr = strings.Join(texts, " | ")
	switch {
	case p.unsupported != "":
	case len(alts) == 0:
		p.unsupported = "no expression"
	case sp.Type == "composite":
		p.unsupported = "a composite parameter: its components are other parameters"
	case len(texts) == 0 && unrooted != "":
		p.unsupported = unrooted
	case len(texts) == 0:
		p.unsupported = "no alternative of the expression is for " + t.name
	case len(p.paths) == 0:
		p.unsupported = "selects no element of " + t.name + ": " + strings.Join(dropped, "; ")
	}
	if p.unsupported != "" {
		p.paths = nil
	} else if len(dropped) > 0 {
		key := sp.ID + ": " + strings.Join(dropped, "; ")
		if !slices.Contains(m.droppedAlts, key) {
			m.droppedAlts = append(m.droppedAlts, key)
		}
	}
	return p
}

// chooseParams sets each type's params from candidates, per type and
// name the definitions of that name: the one prefer keeps. It notes the
// definitions left out and m.droppedAlts.
func (m *model) chooseParams(candidates map[*typeModel]map[string][]*paramModel) {
	dropped := map[string][]string{} // "kept and dropped" → types
	for _, t := range m.types {
		names := make([]string, 0, len(candidates[t]))
		for n := range candidates[t] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := candidates[t][n]
			best := c[0]
			for _, p := range c[1:] {
				if m.prefer(t, p, best) {
					best = p
				}
			}
			for _, p := range c {
				if p != best {
					k := fmt.Sprintf("%s is defined by %s and %s; %s is kept", n, best.id, p.id, best.id)
					dropped[k] = append(dropped[k], t.name)
				}
			}
			t.params = append(t.params, best)
			t.byParam[n] = best
		}
	}
	sort.Strings(m.droppedAlts)
	for _, d := range m.droppedAlts {
		m.note("left out, naming no element: %s", d)
	}
	keys := make([]string, 0, len(dropped))
	for k := range dropped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		types := dropped[k]
		if len(types) > 3 {
			m.note("%s (%d types)", k, len(types))
		} else {
			m.note("%s (%s)", k, strings.Join(types, ", "))
		}
	}
}

// prefer reports whether SearchParameter a should be kept over b for t: the
// one named after the type ("Patient-name") or after an abstract base
// ("Resource-id"), then a supported one, then the smaller id.
func (m *model) prefer(t *typeModel, a, b *paramModel) bool {
	own := func(p *paramModel) bool {
		owner, _, _ := strings.Cut(p.id, "-")
		return owner == t.name || m.abstract[owner]
	}
	if own(a) != own(b) {
		return own(a)
	}
	if (a.unsupported == "") != (b.unsupported == "") {
		return a.unsupported == ""
	}
	return a.id < b.id
}

// resolve turns the steps of an alternative into a path relative to t,
// checked against t's StructureDefinition as far as the snapshot goes
// (inside a data type such as HumanName it cannot check, and keeps the
// names as they are). A choice element left un-narrowed is written with
// [x] ("effective[x]"); a cast or a DSTU2 type-suffixed name picks one
// variant ("valueQuantity").
func (t *typeModel) resolve(segs []seg) (pathModel, error) {
	var pm pathModel
	var out []string
	prefix := ""    // where t's elements are looked up, "" or "component."
	inType := false // past the snapshot, inside a data type
	var last *elem  // the element the last name resolved to, if known
	choiceAt := -1  // index in out of an un-narrowed choice element
	for _, s := range segs {
		switch s.kind {
		case segField:
			choiceAt, last = -1, nil
			if inType {
				out = append(out, s.name)
				continue
			}
			key := prefix + s.name
			if e := t.byPath[key]; e != nil {
				out, last = append(out, s.name), e
				switch {
				case e.contentRef != "":
					prefix = e.contentRef + "."
				case e.nameRef:
					inType = true
				case t.parents[key]:
					prefix = key + "."
				default:
					inType = true
				}
				continue
			}
			if e := t.byPath[key+"[x]"]; e != nil {
				choiceAt, last, inType = len(out), e, true
				out = append(out, s.name+"[x]")
				continue
			}
			if e := t.choiceVariant(prefix, s.name); e != nil {
				out, last, inType = append(out, s.name), e, true
				continue
			}
			return pm, noElementError{fmt.Sprintf("%s has no element %s", t.name, key)}
		case segCast:
			switch {
			case choiceAt >= 0:
				// STU3 writes some casts capitalised: as(DateTime).
				i := slices.IndexFunc(last.types, func(typ string) bool { return upperFirst(typ) == upperFirst(s.name) })
				if i < 0 {
					return pm, noElementError{fmt.Sprintf("%s.%s has no %s variant", t.name, last.path, s.name)}
				}
				out[choiceAt] = strings.TrimSuffix(out[choiceAt], "[x]") + upperFirst(last.types[i])
				choiceAt = -1
			case last == nil && inType && len(out) > 0:
				// A choice inside a data type (UsageContext.value).
				out[len(out)-1] += upperFirst(s.name)
			case last != nil && slices.Contains(last.types, s.name):
				// A cast to the element's own type: nothing to narrow.
			default:
				return pm, fmt.Errorf("cast to %s of an element that is not a choice", s.name)
			}
		case segResolve:
			pm.target = s.name
		case segWhere:
			if pm.whereKey != "" {
				return pm, fmt.Errorf("more than one where() filter")
			}
			if len(out) == 0 {
				return pm, fmt.Errorf("where() on the resource")
			}
			pm.whereAt, pm.whereKey, pm.whereValue = strings.Join(out, "."), s.key, s.value
		}
	}
	if len(out) == 0 {
		return pm, fmt.Errorf("no element")
	}
	pm.path = strings.Join(out, ".")
	return pm, nil
}

// noElementError is a path naming an element (or a choice variant) that
// the type does not have: it selects nothing in any valid resource.
type noElementError struct{ msg string }

func (e noElementError) Error() string { return e.msg }

// choiceVariant returns the choice element that name is a variant of
// ("valueQuantity" of "value[x]"), below prefix.
func (t *typeModel) choiceVariant(prefix, name string) *elem {
	for i := 1; i < len(name); i++ {
		if name[i] < 'A' || name[i] > 'Z' {
			continue
		}
		e := t.byPath[prefix+name[:i]+"[x]"]
		if e == nil {
			continue
		}
		for _, typ := range e.types {
			if upperFirst(typ) == name[i:] {
				return e
			}
		}
	}
	return nil
}

func (m *model) buildCompartment(dir string) error {
	entries, err := readCompartment(dir)
	if err != nil {
		return err
	}
	for _, ce := range entries {
		t := m.byName[ce.typ]
		if t == nil {
			return fmt.Errorf("%s: the Patient compartment names %s, which is not a resource type", m.rel.dir, ce.typ)
		}
		if len(ce.params) == 0 {
			continue
		}
		t.inComp = true
		for _, name := range ce.params {
			cp := compParam{name: name}
			if strings.Contains(name, ".") {
				// A chain (DSTU2, STU3: "participant.patient"): the link
				// is in the referenced resource, not in this one.
				cp.chained = true
				t.compPars = append(t.compPars, cp)
				continue
			}
			p := t.byParam[name]
			switch {
			case p == nil:
				m.note("Patient compartment: %s.%s has no SearchParameter", t.name, name)
			case p.unsupported != "":
				m.note("Patient compartment: %s.%s (%s) has no usable path: %s", t.name, name, p.id, p.unsupported)
			}
			if p != nil {
				for _, pm := range p.paths {
					if !slices.Contains(cp.paths, pm.path) {
						cp.paths = append(cp.paths, pm.path)
					}
				}
			}
			t.compPars = append(t.compPars, cp)
		}
	}
	return nil
}
