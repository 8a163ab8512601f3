package importer

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// A store holds one FHIR release (issue 17). Before anything is written an
// import settles which: the one asked for (Options.FHIR), else the one the
// store records, else the one its data is written in; data of another
// release is refused, naming both. The data's release is read from a sample
// of its first resources (sampleSize, in input order): a release is a
// candidate while every sampled resource fits it (fits). The first import
// into a store records the release.

// sampleSize is how many resources the release is judged by.
const sampleSize = 500

// preference orders the candidates when the data fits several: the default
// first, then the newest.
var preference = []defs.Version{defs.R4, defs.R5, defs.STU3, defs.DSTU2}

// resolveModel returns the release to import as and records it in store.
func resolveModel(ctx context.Context, store Store, opts Options, files []input) (*fhir.Model, error) {
	vs, _ := store.(bulk.FHIRVersionStore)
	var stored string
	if vs != nil {
		var err error
		if stored, err = vs.FHIRVersion(ctx); err != nil {
			return nil, err
		}
	}
	want := opts.FHIR
	if want != nil && stored != "" && string(want.Version) != stored {
		return nil, bulk.VersionConflict(stored, string(want.Version))
	}
	cands, evidence := sampleReleases(files)
	m := want
	switch {
	case m != nil:
	case stored != "":
		if m = fhir.ModelFor(defs.Version(stored)); m == nil {
			return nil, bulk.Errorf(bulk.EINTERNAL, "The store records an unknown FHIR release %q.", stored)
		}
	default:
		m = fhir.R4Model()
		for _, v := range preference {
			if slices.Contains(cands, v) {
				m = fhir.ModelFor(v)
				break
			}
		}
	}
	if cands != nil && !slices.Contains(cands, m.Version) {
		what := "no supported FHIR release"
		if len(cands) > 0 {
			var names []string
			for _, v := range cands {
				names = append(names, fhir.ModelFor(v).Name)
			}
			what = "FHIR " + strings.Join(names, " or ")
		}
		return nil, bulk.Errorf(bulk.EINVALID, "The files hold %s data (%s), not FHIR %s, which %s; nothing was imported.",
			what, evidence[m.Version], m.Name, map[bool]string{true: "this store holds", false: "was asked for"}[want == nil])
	}
	if vs != nil {
		if err := vs.SetFHIRVersion(ctx, string(m.Version)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// sampleReleases reads up to sampleSize resources from the local files and
// returns the releases they all fit (nil when nothing was sampled) and, for
// each other release, what ruled it out.
func sampleReleases(files []input) ([]defs.Version, map[defs.Version]string) {
	cands := slices.Clone(defs.Versions())
	n := 0
	evidence := map[defs.Version]string{}
	visit := func(body []byte) bool {
		v := gjson.ParseBytes(body)
		typ := v.Get("resourceType").String()
		if typ == "" {
			return true
		}
		if typ == "Bundle" {
			v.Get("entry.#.resource").ForEach(func(_, r gjson.Result) bool {
				n++
				cands = narrow(cands, evidence, r)
				return n < sampleSize
			})
			return n < sampleSize
		}
		n++
		cands = narrow(cands, evidence, v)
		return n < sampleSize
	}
	for _, in := range files {
		if in.path == "" || n >= sampleSize {
			continue // fetched files are not read twice
		}
		if !sampleFile(in, visit) {
			break
		}
	}
	if n == 0 {
		return nil, nil
	}
	return cands, evidence
}

// narrow keeps the candidates r fits. A resource that fits none of them
// (a bad line, or one of another release mixed in) is no evidence: the
// import reports it on its own.
func narrow(cands []defs.Version, why map[defs.Version]string, r gjson.Result) []defs.Version {
	var kept []defs.Version
	reasons := map[defs.Version]string{}
	for _, v := range cands {
		if w := misfit(fhir.ModelFor(v), r); w == "" {
			kept = append(kept, v)
		} else {
			reasons[v] = w
		}
	}
	if len(kept) == 0 {
		return cands
	}
	for v, w := range reasons {
		why[v] = w
	}
	return kept
}

// sampleFile calls visit with each resource (NDJSON line, or the whole JSON
// document) of in until it returns false; it reports whether to go on.
func sampleFile(in input, visit func([]byte) bool) bool {
	f, err := os.Open(in.path)
	if err != nil {
		return true // the import reports it
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return true
		}
		defer zr.Close()
		r = zr
	}
	if in.document {
		b, err := io.ReadAll(io.LimitReader(r, 64<<20))
		if err != nil || !gjson.ValidBytes(b) {
			return true
		}
		return visit(b)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if line := sc.Bytes(); len(line) > 0 && gjson.ValidBytes(line) && !visit(line) {
			return false
		}
	}
	return true
}

// baseElements are those of Resource and DomainResource, which every
// type has.
var baseElements = map[string]bool{
	"resourceType": true, "id": true, "meta": true, "implicitRules": true, "language": true,
	"text": true, "contained": true, "extension": true, "modifierExtension": true,
}

// misfit says why resource r cannot be of release m, or "" if it can be: an
// unknown type, a top-level element the type does not have, or one whose
// JSON shape (a string for a complex type, an object for a primitive)
// contradicts every type the element may have.
func misfit(m *fhir.Model, r gjson.Result) string {
	name := r.Get("resourceType").String()
	t := m.Defs().Type(name)
	if t == nil {
		return fmt.Sprintf("%s is not a FHIR %s resource type", name, m.Name)
	}
	why := ""
	r.ForEach(func(k, v gjson.Result) bool {
		key := k.String()
		if baseElements[key] || strings.HasPrefix(key, "_") {
			return true
		}
		types, ok := elementTypes(t, key)
		if !ok {
			why = fmt.Sprintf("%s.%s is not a FHIR %s element", name, key, m.Name)
			return false
		}
		if !shapeFits(types, v) {
			why = fmt.Sprintf("%s.%s is not shaped as FHIR %s has it", name, key, m.Name)
			return false
		}
		return true
	})
	return why
}

// elementTypes returns the types the top-level JSON key may have in t: a
// choice element's variant ("valueQuantity" of "value[x]") has its one.
func elementTypes(t *defs.Type, key string) ([]string, bool) {
	for _, e := range t.Elements {
		if e.Name == key {
			return e.Types, true
		}
		if base, ok := strings.CutSuffix(e.Name, "[x]"); ok && strings.HasPrefix(key, base) {
			variant := key[len(base):]
			for _, typ := range e.Types {
				if strings.EqualFold(typ, variant) {
					return []string{typ}, true
				}
			}
		}
	}
	return nil, false
}

// shapeFits reports whether v (or each item of an array) may be one of
// types: primitives (lower-case type codes) are JSON scalars, the others
// objects.
func shapeFits(types []string, v gjson.Result) bool {
	if len(types) == 0 {
		return true
	}
	one := func(x gjson.Result) bool {
		for _, typ := range types {
			primitive := typ != "" && typ[0] >= 'a' && typ[0] <= 'z'
			if primitive != x.IsObject() {
				return true
			}
		}
		return false
	}
	if v.IsArray() {
		ok := true
		v.ForEach(func(_, x gjson.Result) bool { ok = one(x); return ok })
		return ok
	}
	return one(v)
}
