package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tranchehq/tranche/internal/bulk"
)

// input is one file to import: a local file, or a remote one that a Bulk
// Data manifest lists and that is not next to it.
type input struct {
	path string // the local file, or "" for a remote one
	url  string // the remote file
	name string // how reports name it: the path, or the URL without its query
	size int64  // bytes, or -1 when not known up front
	// count is the manifest's resource count, or -1.
	count int64
	// document is set for files that hold one JSON value (.json) rather
	// than NDJSON.
	document bool
}

// manifestKinds are a manifest's file arrays in the order they import:
// deletions first, as a transaction applies DELETEs before PUTs (R4
// http.html#trules): a resource in both was deleted and then re-created,
// since output lists what is live at transactionTime.
var manifestKinds = []struct{ kind, dir, defType string }{
	{"deleted", "deleted/", "Bundle"},
	{"output", "", "output"},
	{"error", "error/", "OperationOutcome"},
}

// manifest is a Bulk Data export manifest (Bulk Data IG, "Response -
// Complete Status").
type manifest struct {
	TransactionTime *string        `json:"transactionTime"`
	Request         string         `json:"request"`
	RequiresToken   bool           `json:"requiresAccessToken"`
	Output          []manifestFile `json:"output"`
	Deleted         []manifestFile `json:"deleted"`
	Error           []manifestFile `json:"error"`
	// Outcome is the draft IG's name for Error.
	Outcome []manifestFile `json:"outcome"`
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count *int64 `json:"count"`
	// FileSize is the draft IG's size in bytes, when given.
	FileSize int64 `json:"fileSize"`
}

func (m *manifest) files(kind string) []manifestFile {
	switch kind {
	case "deleted":
		return m.Deleted
	case "error":
		return append(m.Error, m.Outcome...)
	}
	return m.Output
}

// maxManifestBytes bounds the .json files read whole to see whether they
// are manifests; manifestPeek is how much of one is read first.
const (
	maxManifestBytes = 16 << 20
	manifestPeek     = 4096
)

// readManifest returns the manifest at path, or nil if the file is not
// one: a JSON object with transactionTime and an output array, and no
// resourceType. FHIR files say "resourceType" at their start, so most are
// told from their first few kilobytes.
func readManifest(path string, size int64) (*manifest, error) {
	if !strings.HasSuffix(strings.ToLower(path), ".json") || size > maxManifestBytes {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, bulk.Errorf(bulk.EINVALID, "Cannot read %s: %v.", path, pathErr(err))
	}
	defer f.Close()
	head := make([]byte, manifestPeek)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if bytes.Contains(head, []byte(`"resourceType"`)) || !bytes.HasPrefix(bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n"), []byte("{")) {
		return nil, nil
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		return nil, bulk.Errorf(bulk.EINVALID, "Cannot read %s: %v.", path, pathErr(err))
	}
	return parseManifest(bytes.TrimPrefix(append(head, rest...), utf8BOM)), nil
}

// parseManifest returns the manifest in data, or nil if it is not one.
func parseManifest(data []byte) *manifest {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil || probe["resourceType"] != nil || probe["output"] == nil {
		return nil
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil || m.TransactionTime == nil {
		return nil
	}
	return &m
}

// lister expands the paths given to Import into inputs.
type lister struct {
	inputs  []input
	skipped []SkippedFile
	seen    map[string]bool // absolute paths of the local files listed
}

// listInputs expands paths into the files to import, before anything is
// imported, so that a mistyped path fails the import up front. A manifest
// stands for the files it lists; a file in a directory that a manifest
// there lists is imported once, as the manifest's.
func listInputs(paths []string) ([]input, []SkippedFile, error) {
	l := &lister{seen: map[string]bool{}}
	for _, p := range paths {
		if u, err := url.Parse(p); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			// Fetched as it is read; a manifest there imports its files.
			in := remoteInput(u, manifestFile{}, -1)
			in.document = !strings.HasSuffix(strings.TrimSuffix(strings.ToLower(u.Path), ".gz"), ".ndjson")
			l.add(in)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, bulk.Errorf(bulk.EINVALID, "Cannot read %s: %v.", p, pathErr(err))
		}
		if !fi.IsDir() {
			m, err := readManifest(p, fi.Size())
			if err != nil {
				return nil, nil, err
			}
			if m != nil {
				ins, err := l.manifestInputs(p, m)
				if err != nil {
					return nil, nil, err
				}
				l.add(ins...)
			} else {
				l.add(localInput(p, fi.Size()))
			}
			continue
		}
		if err := l.dir(p); err != nil {
			return nil, nil, err
		}
	}
	return l.inputs, l.skipped, nil
}

// add lists ins but for local files listed already.
func (l *lister) add(ins ...input) {
	for _, in := range ins {
		if in.path != "" {
			abs := absPath(in.path)
			if l.seen[abs] {
				continue
			}
			l.seen[abs] = true
		}
		l.inputs = append(l.inputs, in)
	}
}

// dir lists the data files under root in lexical order, each manifest's
// files where the manifest is.
func (l *lister) dir(root string) error {
	type found struct {
		path string
		size int64
	}
	var files []found
	// WalkDir visits in lexical order, so imports are repeatable.
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !isDataFile(path) {
			return nil
		}
		fi, err := os.Stat(path) // follows links to files
		if err != nil || !fi.Mode().IsRegular() {
			return nil // links to directories are not walked
		}
		if d.Type()&fs.ModeSymlink == 0 && !d.Type().IsRegular() {
			return nil
		}
		files = append(files, found{path, fi.Size()})
		return nil
	})
	if err != nil {
		return bulk.Errorf(bulk.EINVALID, "Cannot read %s: %v.", root, pathErr(err))
	}
	// First the manifests, so the files they list are known wherever they
	// sort.
	expanded := map[string][]input{}
	covered := map[string]bool{}
	for _, f := range files {
		m, err := readManifest(f.path, f.size)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		ins, err := l.manifestInputs(f.path, m)
		if err != nil {
			return err
		}
		expanded[f.path] = ins
		for _, in := range ins {
			if in.path != "" {
				covered[absPath(in.path)] = true
			}
		}
	}
	for _, f := range files {
		switch ins, ok := expanded[f.path]; {
		case ok:
			l.add(ins...)
		case covered[absPath(f.path)] || l.seen[absPath(f.path)]:
			// Listed by a manifest (error files are, and are skipped).
		default:
			l.add(localInput(f.path, f.size))
		}
	}
	return nil
}

// manifestInputs resolves the files a manifest lists: each from the
// manifest's directory when it is there, else from its URL. Error files
// are skipped, with a note; they are marked seen so that a directory walk
// does not import them either.
func (l *lister) manifestInputs(manifestPath string, m *manifest) ([]input, error) {
	dir := filepath.Dir(manifestPath)
	var ins []input
	for _, k := range manifestKinds {
		n := map[string]int{} // tranche export numbers files per type
		for i, f := range m.files(k.kind) {
			typ := safeName(f.Type)
			if typ == "" {
				typ = k.defType
			}
			planned := filepath.Join(dir, filepath.FromSlash(k.dir+fmt.Sprintf("%s.%03d.ndjson", typ, n[typ])))
			n[typ]++
			where := fmt.Sprintf("%s %s[%d]", manifestPath, k.kind, i)
			in, err := resolveFile(dir, planned, k.dir, f)
			if err != nil {
				return nil, bulk.Errorf(bulk.EINVALID, "%s: %s", where, bulk.ErrorMessage(err))
			}
			if k.kind == "error" {
				if in.path != "" {
					l.seen[absPath(in.path)] = true
				}
				l.skipped = append(l.skipped, SkippedFile{File: in.name,
					Reason: "an export's error file (OperationOutcomes, listed in " + filepath.Base(manifestPath) + "), not data"})
				continue
			}
			ins = append(ins, in)
		}
	}
	return ins, nil
}

// resolveFile finds a manifest file: a relative URL is a path from the
// manifest's directory; for an http(s) URL the file is looked for there
// under the name `tranche export` gives it (planned), then under its
// URL's last path segment (as other tools save it), and fetched if it is
// in neither place.
func resolveFile(dir, planned, kindDir string, f manifestFile) (input, error) {
	if f.URL == "" {
		return input{}, bulk.Errorf(bulk.EINVALID, "a file without a url")
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return input{}, bulk.Errorf(bulk.EINVALID, "url %q: %v", f.URL, err)
	}
	count := int64(-1)
	if f.Count != nil {
		count = *f.Count
	}
	local := func(p string) (input, bool) {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return input{}, false
		}
		in := localInput(p, fi.Size())
		in.count = count
		return in, true
	}
	switch u.Scheme {
	case "":
		p := filepath.FromSlash(u.Path)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if in, ok := local(p); ok {
			return in, nil
		}
		return input{}, bulk.Errorf(bulk.EINVALID, "%s is not there", p)
	case "file":
		if in, ok := local(filepath.FromSlash(u.Path)); ok {
			return in, nil
		}
		return input{}, bulk.Errorf(bulk.EINVALID, "%s is not there", u.Path)
	case "http", "https":
		candidates := []string{planned}
		if base := path.Base(u.Path); base != "/" && base != "." {
			candidates = append(candidates, filepath.Join(dir, base), filepath.Join(dir, filepath.FromSlash(kindDir), base))
		}
		for _, p := range candidates {
			if in, ok := local(p); ok {
				return in, nil
			}
		}
		return remoteInput(u, f, count), nil
	}
	return input{}, bulk.Errorf(bulk.EINVALID, "url %q: only http, https, file and relative URLs are read", f.URL)
}

// remoteInput is a file to fetch from u; f gives its size, if known.
func remoteInput(u *url.URL, f manifestFile, count int64) input {
	shown := *u
	shown.RawQuery, shown.Fragment, shown.User = "", "", nil // signed URLs carry credentials
	size := int64(-1)
	if f.FileSize > 0 {
		size = f.FileSize
	}
	return input{url: u.String(), name: shown.String(), size: size, count: count,
		document: strings.HasSuffix(strings.TrimSuffix(strings.ToLower(u.Path), ".gz"), ".json")}
}

// readRemoteManifest imports the files of a manifest fetched from in: each
// from its URL, relative to the manifest's, deletions first.
func (im *importer) readRemoteManifest(in input, m *manifest) error {
	base, err := url.Parse(in.url)
	if err != nil {
		im.fileError(in.name, "%v", err)
		return nil
	}
	for _, k := range manifestKinds {
		for i, f := range m.files(k.kind) {
			u, err := base.Parse(f.URL)
			if err != nil || f.URL == "" || (u.Scheme != "http" && u.Scheme != "https") {
				im.fileError(in.name, "%s[%d]: url %q is not an http(s) URL", k.kind, i, f.URL)
				continue
			}
			count := int64(-1)
			if f.Count != nil {
				count = *f.Count
			}
			file := remoteInput(u, f, count)
			if k.kind == "error" {
				im.skip(file.name, "an export's error file (OperationOutcomes, listed in "+in.name+"), not data")
				continue
			}
			im.progress.TotalFiles++
			im.progress.File = file.name
			if err := im.readInput(file); err != nil {
				return err
			}
			im.report.Files++
			im.progress.Files++
			im.reportProgress()
		}
	}
	return nil
}

func localInput(p string, size int64) input {
	return input{path: p, name: p, size: size, count: -1, document: isDocumentFile(p)}
}

// safeName keeps letters, digits, '-' and '_' of a resource type name, as
// `tranche export` does in the names of the files it saves.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return -1
	}, s)
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// pathErr is the reason of a file system error without the path, which
// messages name already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// TotalBytes returns the size of the files that importing paths reads, as
// Import lists them (a manifest counts as the files it lists), for
// progress against a total. Remote files count when their manifest gives
// their size (fileSize): otherwise the total is short of them.
func TotalBytes(paths ...string) (int64, error) {
	ins, _, err := listInputs(paths)
	if err != nil {
		return 0, err
	}
	total, _ := totals(ins)
	return total, nil
}

// totals sums the sizes known up front and, when every input has a
// manifest count, the resources.
func totals(ins []input) (bytes, resources int64) {
	for _, in := range ins {
		if in.size > 0 {
			bytes += in.size
		}
		if resources >= 0 && in.count >= 0 {
			resources += in.count
		} else {
			resources = -1
		}
	}
	return bytes, max(resources, 0)
}
