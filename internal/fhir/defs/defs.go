// Package defs holds, per FHIR release, the definitions Tranche needs from
// the specification: the resource types, the Patient compartment, the
// search parameters usable in _typeFilter, the mandatory elements that
// _elements always keeps, and the date and reference element paths.
//
// The tables (zz_*.go) are generated from the official definition packages
// (hl7.fhir.r2.core 1.0.2, hl7.fhir.r3.core 3.0.2, hl7.fhir.r4.core 4.0.1,
// hl7.fhir.r5.core 5.0.0), trimmed into spec/ (see spec/README.md), by
//
//	go generate ./internal/fhir/defs
//
// Nothing in them is typed by hand; TestGenerated checks that they are what
// the generator writes from spec/ now.
//
// Paths are dot-separated JSON keys relative to the resource ("subject",
// "participant.actor"), crossing arrays at any level. A choice element
// that the definition does not narrow is written with [x] ("effective[x]":
// effectiveDateTime, effectivePeriod, …; ChoiceTypes lists the variants);
// a narrowed one by its variant ("valueQuantity").
package defs

//go:generate go run ./gen -spec spec -out .

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Version is a FHIR release that a store speaks.
type Version string

// The supported releases.
const (
	DSTU2 Version = "dstu2" // 1.0.2
	STU3  Version = "stu3"  // 3.0.2
	R4    Version = "r4"    // 4.0.1
	R5    Version = "r5"    // 5.0.0
)

// Versions lists the supported releases, oldest first.
func Versions() []Version { return []Version{DSTU2, STU3, R4, R5} }

// ParseVersion accepts a release name (dstu2, stu3, r4, r5, any case) or a
// FHIR version number, full ("4.0.1") or major.minor ("4.0", as in the
// fhirVersion MIME type parameter).
func ParseVersion(s string) (Version, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, v := range Versions() {
		d := For(v)
		if s == string(v) || s == d.FHIRVersion || s == majorMinor(d.FHIRVersion) {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown FHIR version %q: want one of dstu2 (1.0.2), stu3 (3.0.2), r4 (4.0.1), r5 (5.0.0)", s)
}

func majorMinor(v string) string {
	if i := strings.LastIndexByte(v, '.'); i > 0 {
		return v[:i]
	}
	return v
}

// String returns the release name.
func (v Version) String() string { return string(v) }

// Defs are one release's definitions. They are read-only and safe for
// concurrent use; slices returned by its methods must not be modified.
type Defs struct {
	Version     Version
	FHIRVersion string // "4.0.1"
	Package     string // the upstream package, "hl7.fhir.r4.core@4.0.1"

	// Types are the concrete resource types (no Resource, DomainResource),
	// sorted by name.
	Types []*Type

	once             sync.Once
	resourceTypes    []string
	byName           map[string]*Type
	compartmentTypes []string
}

// Type is one resource type's definitions.
type Type struct {
	Name string
	// Elements are the top-level elements, in definition order.
	Elements []*Element
	// Mandatory names the top-level elements with a minimum cardinality of
	// 1 or more, in definition order; a choice element as "value[x]".
	Mandatory []string
	// Choices are the choice elements at any depth of the definition
	// ("value[x]", "component.value[x]") and their types, in order.
	Choices []Choice
	// DatePaths are the elements at any depth of the definition whose type
	// is date, dateTime, instant or Period, with choice elements expanded
	// to their date variants ("effectiveDateTime", "effectivePeriod").
	DatePaths []ElementPath
	// ReferencePaths are the Reference-typed elements at any depth of the
	// definition ("subject", "participant.actor", "valueReference").
	ReferencePaths []ElementPath
	// SearchParams are the type's search parameters (its own and the
	// common ones such as _id), sorted by name.
	SearchParams []*SearchParam
	// Compartment lists the parameters that link the type into the
	// Patient compartment, in CompartmentDefinition order; nil when the
	// type is not in it. Patient links to itself through "{def}", which is
	// not listed.
	Compartment []CompartmentParam
}

// Element is a top-level element of a resource type.
type Element struct {
	Name     string   // "status", "value[x]"
	Min      int      // minimum cardinality
	Max      string   // "1", "*"
	Types    []string // type codes, in definition order
	Targets  []string // for Reference types, the target resource types (or "Resource", "Any")
	Modifier bool     // isModifier
	Summary  bool     // isSummary
}

// Choice is a choice element and its types.
type Choice struct {
	Path  string // "value[x]"
	Types []string
}

// ElementPath is an element path of a given type.
type ElementPath struct {
	Path    string   // "effectiveDateTime", "participant.actor"
	Type    string   // date, dateTime, instant, Period, or Reference
	Targets []string // for a Reference, the target resource types
}

// SearchParam is a search parameter of one resource type, from its
// SearchParameter definition. Paths is empty when the definition's
// expression (DSTU2: xpath) is outside the subset the generator compiles:
// Unsupported then says why.
type SearchParam struct {
	Name string // the code used in queries, "clinical-status"
	// Type is number, date, string, token, reference, composite, quantity,
	// uri or special.
	Type        string
	ID          string   // id of the SearchParameter: its canonical URL is URL()
	Expression  string   // the alternatives of the expression (DSTU2: xpath) for this type
	Paths       []Path   // what Expression selects
	Targets     []string // for a reference, the resource types it may point at
	Unsupported string   // why Paths is empty, or ""
}

// URL returns the canonical URL of the parameter's SearchParameter.
func (p *SearchParam) URL() string { return "http://hl7.org/fhir/SearchParameter/" + p.ID }

// Path is one element path that a search parameter selects.
type Path struct {
	Path string
	// Target, from where(resolve() is T): only references to a T count.
	Target string
	// WhereAt, WhereKey and WhereValue, from where(system='email') (DSTU2:
	// [system/@value='email']): of the elements at WhereAt (Path or a
	// prefix of it: "relatedArtifact" in
	// relatedArtifact.where(type='composed-of').resource), only those whose
	// WhereKey is WhereValue count.
	WhereAt, WhereKey, WhereValue string
}

// CompartmentParam is a search parameter that links a type into the Patient
// compartment, and the element paths its expression selects.
//
// DSTU2 and STU3 also list chained parameters ("participant.patient": the
// resource that participant references has the patient). Chained is then
// true and Paths empty: whether the resource is in the compartment depends
// on the referenced resource, not on this one's elements.
type CompartmentParam struct {
	Name    string
	Paths   []string
	Chained bool
}

// For returns the definitions of v, or nil if v is not a supported release.
func For(v Version) *Defs {
	var d *Defs
	switch v {
	case DSTU2:
		d = dstu2
	case STU3:
		d = stu3
	case R4:
		d = r4
	case R5:
		d = r5
	default:
		return nil
	}
	d.once.Do(d.index)
	return d
}

func (d *Defs) index() {
	d.byName = make(map[string]*Type, len(d.Types))
	for _, t := range d.Types {
		d.byName[t.Name] = t
		d.resourceTypes = append(d.resourceTypes, t.Name)
		if t.Compartment != nil {
			d.compartmentTypes = append(d.compartmentTypes, t.Name)
		}
	}
}

// ResourceTypes lists the concrete resource types, sorted.
func (d *Defs) ResourceTypes() []string { return d.resourceTypes }

// IsResourceType reports whether s is a concrete resource type of the
// release (case-sensitive).
func (d *Defs) IsResourceType(s string) bool { return d.byName[s] != nil }

// Type returns the definitions of the resource type name, or nil.
func (d *Defs) Type(name string) *Type { return d.byName[name] }

// PatientCompartmentTypes lists, sorted, the types that the Patient
// compartment links to a Patient through at least one parameter (Patient
// included where it links to other Patients).
func (d *Defs) PatientCompartmentTypes() []string { return d.compartmentTypes }

// CompartmentParams returns the parameters that link typ into the Patient
// compartment, or nil if typ is not in it.
func (d *Defs) CompartmentParams(typ string) []CompartmentParam {
	if t := d.byName[typ]; t != nil {
		return t.Compartment
	}
	return nil
}

// SearchParam returns the search parameter name of typ, or nil.
func (d *Defs) SearchParam(typ, name string) *SearchParam {
	t := d.byName[typ]
	if t == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(t.SearchParams, name, func(p *SearchParam, name string) int {
		return strings.Compare(p.Name, name)
	})
	if !ok {
		return nil
	}
	return t.SearchParams[i]
}

// Mandatory returns the top-level elements of typ with a minimum
// cardinality of 1 or more (a choice element as "value[x]"), or nil.
func (d *Defs) Mandatory(typ string) []string {
	if t := d.byName[typ]; t != nil {
		return t.Mandatory
	}
	return nil
}

// Element returns the top-level element name of typ ("status", or a choice
// element by its base name "value" or "value[x]"), or nil.
func (d *Defs) Element(typ, name string) *Element {
	t := d.byName[typ]
	if t == nil {
		return nil
	}
	base := strings.TrimSuffix(name, "[x]")
	for _, e := range t.Elements {
		if e.Name == name || e.Name == base+"[x]" {
			return e
		}
	}
	return nil
}

// ChoiceTypes returns the types of the choice element path of typ ("value",
// "value[x]" or "component.value"), or nil if it is not one.
func (d *Defs) ChoiceTypes(typ, path string) []string {
	t := d.byName[typ]
	if t == nil {
		return nil
	}
	path = strings.TrimSuffix(path, "[x]") + "[x]"
	for _, c := range t.Choices {
		if c.Path == path {
			return c.Types
		}
	}
	return nil
}
