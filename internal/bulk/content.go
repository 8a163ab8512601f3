package bulk

import (
	"bytes"
	"strings"
	"sync"
)

// SourceLastUpdatedURL is the meta.extension in which an import keeps a
// resource's own meta.lastUpdated (valueInstant, as it was written) when
// the store's clock sets meta.lastUpdated: the time the source system
// gave, which `_since` no longer goes by. Importing again replaces it with
// the lastUpdated of the file imported (a Tranche export's is the exporting
// server's stamp).
const SourceLastUpdatedURL = "https://tranche.dev/fhir/StructureDefinition/source-last-updated"

// SameContent reports whether two stored bodies are the same version's
// content: equal but for what storing sets, meta.lastUpdated and the
// SourceLastUpdatedURL extension (see AppendContent). Exporting a resource
// and importing it again changes exactly those two.
func SameContent(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	pa, pb := contentBufs.Get().(*[]byte), contentBufs.Get().(*[]byte)
	ca, cb := AppendContent((*pa)[:0], a), AppendContent((*pb)[:0], b)
	same := bytes.Equal(ca, cb)
	for _, p := range []struct {
		p   *[]byte
		buf []byte
	}{{pa, ca}, {pb, cb}} {
		if cap(p.buf) <= 1<<20 { // a few huge bodies should not stay pooled
			*p.p = p.buf[:0]
			contentBufs.Put(p.p)
		}
	}
	return same
}

var contentBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// AppendContent appends the JSON object body to dst without meta.lastUpdated
// and without the SourceLastUpdatedURL entry of meta.extension (an
// extension array left empty goes too). Other bytes are kept as they are:
// stored bodies are compact, written the same way each time. A body it
// cannot read is appended whole, which at worst makes a version look
// changed.
func AppendContent(dst, body []byte) []byte {
	ms, me := -1, -1
	end := eachMember(body, 0, func(key []byte, vs, ve int) {
		if ms < 0 && string(key) == `"meta"` {
			ms, me = vs, ve
		}
	})
	if end < 0 || ms < 0 {
		return append(dst, body...)
	}
	mark := len(dst)
	dst = append(dst, body[:ms]...)
	dst, ok := appendMetaContent(dst, body[ms:me])
	if !ok {
		return append(dst[:mark], body...)
	}
	return append(dst, body[me:]...)
}

// appendMetaContent appends a meta object without lastUpdated and the
// source extension; ok is false if meta is not an object.
func appendMetaContent(dst, meta []byte) (_ []byte, ok bool) {
	dst = append(dst, '{')
	n := 0
	member := func(key, val []byte) {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(append(append(dst, key...), ':'), val...)
	}
	end := eachMember(meta, 0, func(key []byte, vs, ve int) {
		switch string(key) {
		case `"lastUpdated"`:
			return
		case `"extension"`:
			var kept [][]byte
			if eachElement(meta, vs, func(es, ee int) {
				if !isSourceExtension(meta[es:ee]) {
					kept = append(kept, meta[es:ee])
				}
			}) < 0 {
				break // not an array: kept as it is
			}
			if len(kept) > 0 {
				member(key, nil)
				dst = append(dst, '[')
				dst = append(dst, bytes.Join(kept, []byte{','})...)
				dst = append(dst, ']')
			}
			return
		}
		member(key, meta[vs:ve])
	})
	if end < 0 {
		return dst, false
	}
	return append(dst, '}'), true
}

var sourceURL = []byte(`"` + SourceLastUpdatedURL + `"`)

// isSourceExtension reports whether an extension object is the
// SourceLastUpdatedURL one.
func isSourceExtension(ext []byte) bool {
	found := false
	eachMember(ext, 0, func(key []byte, vs, ve int) {
		if string(key) == `"url"` && bytes.Equal(ext[vs:ve], sourceURL) {
			found = true
		}
	})
	return found
}

// eachMember calls fn with each member of the JSON object at b[i:]: its
// key as written (quoted) and where its value starts and ends. It returns
// the index after the object, or -1 if b[i:] does not start with one.
func eachMember(b []byte, i int, fn func(key []byte, vs, ve int)) int {
	return eachItem(b, i, '{', '}', func(i int) int {
		ke := skipString(b, i)
		if ke < 0 {
			return -1
		}
		j := skipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return -1
		}
		vs := skipSpace(b, j+1)
		ve := skipValue(b, vs)
		if ve >= 0 {
			fn(b[i:ke], vs, ve)
		}
		return ve
	})
}

// eachElement is eachMember for an array: fn gets each element's span.
func eachElement(b []byte, i int, fn func(es, ee int)) int {
	return eachItem(b, i, '[', ']', func(i int) int {
		e := skipValue(b, i)
		if e >= 0 {
			fn(i, e)
		}
		return e
	})
}

// eachItem walks the comma-separated items between open and close at
// b[i:], item reading one and returning where it ends (-1: broken).
func eachItem(b []byte, i int, open, close byte, item func(i int) int) int {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != open {
		return -1
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == close {
		return i + 1
	}
	for {
		if i = item(i); i < 0 {
			return -1
		}
		i = skipSpace(b, i)
		switch {
		case i >= len(b):
			return -1
		case b[i] == close:
			return i + 1
		case b[i] != ',':
			return -1
		}
		i = skipSpace(b, i+1)
	}
}

// skipValue returns the index after the JSON value at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j := skipString(b, i)
				if j < 0 {
					return -1
				}
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// skipString returns the index after the JSON string at b[i], or -1.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
