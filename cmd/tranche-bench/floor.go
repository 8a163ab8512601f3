package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/importer"
)

// floorRun is the import's floor (issue 20 item 1): the files an import of
// the same path reads, read, decompressed and scanned in one goroutine as
// the importer's reader does (internal/importer read.go and resource.go:
// 1 MiB buffered reads, klauspost gzip by the magic number, lines by
// ReadSlice, gjson.ValidBytes and gjson.GetBytes of resourceType and id),
// writing nothing: no stamping, no copies, no store. The import does all
// of this and its writes, so its rate over the floor's is the share of the
// machine's best it reaches.
type floorRun struct {
	Seconds   float64 `json:"seconds"`
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`     // decompressed
	Resources int64   `json:"resources"` // valid JSON objects with a string resourceType and id
}

// ResourcesPerSec is the floor's rate.
func (f floorRun) ResourcesPerSec() float64 {
	if f.Seconds <= 0 {
		return 0
	}
	return float64(f.Resources) / f.Seconds
}

// MBPerSec is the floor's rate of decompressed bytes.
func (f floorRun) MBPerSec() float64 {
	if f.Seconds <= 0 {
		return 0
	}
	return float64(f.Bytes) / 1e6 / f.Seconds
}

// floorBufferSize is the importer's read buffer (readBufferSize).
const floorBufferSize = 1 << 20

// importFloor measures the floor of importing path, a file or a directory.
func importFloor(ctx context.Context, path string) (floorRun, error) {
	var f floorRun
	files, err := dataFiles(path)
	if err != nil {
		return f, err
	}
	start := time.Now()
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return f, err
		}
		if err := f.scanFile(p); err != nil {
			return f, err
		}
		f.Files++
	}
	f.Seconds = time.Since(start).Seconds()
	return f, nil
}

// dataFiles lists what the importer imports under path, in its order:
// .ndjson and .json files, gzipped or not, in lexical order. Export
// manifests (manifest.json) are left out: the bench's datasets have none.
func dataFiles(path string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(strings.ToLower(d.Name()), ".gz")
		if d.Type().IsRegular() && (strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".json")) && name != "manifest.json" {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

func (f *floorRun) scanFile(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, floorBufferSize)
	r := br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = bufio.NewReaderSize(zr, floorBufferSize)
	}
	if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(path), ".gz"), ".json") {
		return f.scanDocument(r)
	}
	return f.scanNDJSON(r)
}

// scanNDJSON is the importer's readNDJSON and line without the import:
// the same line reader (importer.Lines).
func (f *floorRun) scanNDJSON(r *bufio.Reader) error {
	_, err := importer.Lines(r, func(_ int, line []byte) error {
		f.Bytes += int64(len(line))
		if doc := bytes.TrimSpace(line); len(doc) > 0 && gjson.ValidBytes(doc) && doc[0] == '{' {
			f.resource(doc)
		}
		return nil
	})
	return err
}

// resource picks a resource's type and id as the importer does.
func (f *floorRun) resource(doc []byte) {
	f.count(gjson.GetBytes(doc, "resourceType"), gjson.GetBytes(doc, "id"))
}

func (f *floorRun) count(typ, id gjson.Result) {
	if typ.Type == gjson.String && id.Type == gjson.String {
		f.Resources++
	}
}

// scanDocument reads a .json file whole as the importer does: a resource,
// or a Bundle whose entries' resources count.
func (f *floorRun) scanDocument(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.Bytes += int64(len(data))
	doc := bytes.TrimSpace(data)
	if len(doc) == 0 || !gjson.ValidBytes(doc) || doc[0] != '{' {
		return nil
	}
	if gjson.GetBytes(doc, "resourceType").Str != "Bundle" {
		f.resource(doc)
		return nil
	}
	gjson.GetBytes(doc, "entry").ForEach(func(_, e gjson.Result) bool {
		if res := e.Get("resource"); res.IsObject() {
			f.count(res.Get("resourceType"), res.Get("id"))
		}
		return true
	})
	return nil
}
