package fsobj

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Objects stored gzip-encoded (Store.SetGzip) are one gzip member whose
// header carries an extra field (RFC 1952 2.3.1.1) with subfield ID "Tr"
// and the object's uncompressed size as 8 little-endian bytes. The size
// field is written as zeros and patched at Close, when it is known: the
// trailer's ISIZE holds the size modulo 2^32 only, and reading it would
// cost a read at the file's end on every Open.
//
// The header marks the encoding, so each file says how it is stored: a
// store that switches modes (a restart with another --gzip-files) reads
// the files of either, and a retried item's file replaces the old one by
// the same atomic rename whatever either's encoding. Identity content
// that begins like such a header is stored gzip-encoded too (sniff), so
// no object is ever mistaken for the other kind.
const (
	// sigLen is the part of the header that identifies an encoded object.
	sigLen = 16
	// headerLen is the whole header: the signature and the size field.
	headerLen = sigLen + 8
)

// extraField is the header's extra field with a zero size.
var extraField = []byte{'T', 'r', 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// looksEncoded reports whether head, an object's first bytes, is the
// header of an encoded object: gzip deflate magic, FEXTRA set, and the
// extra field's length (12) and subfield header at bytes 10 to 15.
func looksEncoded(head []byte) bool {
	return len(head) >= sigLen && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8 && head[3]&0x04 != 0 &&
		bytes.Equal(head[10:sigLen], []byte{12, 0, 'T', 'r', 8, 0})
}

// gzipLevel is gzip.BestSpeed, as for the download route's on-the-fly
// gzip: most of the ratio (about 12 on NDJSON) at the least CPU, which the
// export pays at write time.
const gzipLevel = gzip.BestSpeed

// gzipWriters are reused: a deflate compressor's state is about 1 MB.
var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
	return gz
}}

// newGzip returns a pooled writer that writes an encoded object's
// header and stream to w.
func newGzip(w io.Writer) *gzip.Writer {
	gz := gzipWriters.Get().(*gzip.Writer)
	gz.Reset(w) // Reset clears the header too
	gz.Extra = extraField
	return gz
}

// patchSize writes the uncompressed size into the header of the encoded
// object being written to f.
func patchSize(f *os.File, size int64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	_, err := f.WriteAt(b[:], sigLen)
	return err
}

// encodedSize reads the header of the object open in f (of stored bytes
// on disk): its uncompressed size, and ok when it is encoded.
func encodedSize(f *os.File, stored int64) (size int64, ok bool, err error) {
	if stored < headerLen {
		return 0, false, nil // shorter than any encoded object
	}
	var h [headerLen]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, false, err
	}
	if !looksEncoded(h[:]) {
		return 0, false, nil
	}
	return int64(binary.LittleEndian.Uint64(h[sigLen:])), true, nil
}

// GzipObject is an open object stored gzip-encoded. Read and Seek work on
// the object's (uncompressed) bytes, decompressing as they go; GzipFile
// gives the stored gzip stream, which the download route sends with
// sendfile to a client that accepts gzip.
type GzipObject struct {
	f       *os.File
	stored  int64 // the file's size
	size    int64 // uncompressed
	modTime time.Time
	zr      *gzip.Reader // nil until the first Read
	at      int64        // uncompressed offset zr has reached
	pos     int64        // offset of the next Read
}

var _ bulk.Object = (*GzipObject)(nil)

// Read decompresses from the current offset.
func (o *GzipObject) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if err := o.reach(); err != nil {
		return 0, err
	}
	n, err := o.zr.Read(p)
	o.at += int64(n)
	o.pos = o.at
	if err == io.EOF && o.pos < o.size {
		err = io.ErrUnexpectedEOF // the stream is shorter than its header says
	}
	if err != nil && err != io.EOF {
		err = bulk.Wrapf(err, bulk.EINTERNAL, "Reading a gzip-encoded file failed.")
	}
	return n, err
}

// reach moves the decoder to pos. A gzip stream can only be read forward:
// a move back starts again from the top, and a move forward decompresses
// what it skips, so a Range request costs the bytes before it.
func (o *GzipObject) reach() error {
	if o.zr != nil && o.at == o.pos {
		return nil
	}
	if o.zr == nil || o.pos < o.at {
		if err := o.restart(); err != nil {
			return bulk.Wrapf(err, bulk.EINTERNAL, "Reading a gzip-encoded file failed.")
		}
	}
	n, err := io.CopyN(io.Discard, o.zr, o.pos-o.at)
	o.at += n
	if err != nil {
		return bulk.Wrapf(err, bulk.EINTERNAL, "Reading a gzip-encoded file failed.")
	}
	return nil
}

// restart points the decoder at the start of the stream.
func (o *GzipObject) restart() error {
	if _, err := o.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	o.at = 0
	if o.zr == nil {
		zr, err := gzip.NewReader(o.f)
		o.zr = zr
		return err
	}
	return o.zr.Reset(o.f)
}

// Seek sets the offset of the next Read; nothing is read until then, so
// http.ServeContent's Seek to the end (for the size) costs nothing.
func (o *GzipObject) Seek(offset int64, whence int) (int64, error) {
	abs, err := bulk.SeekTarget(o.pos, o.size, offset, whence)
	if err != nil {
		return 0, err
	}
	o.pos = abs
	return abs, nil
}

// Close closes the file.
func (o *GzipObject) Close() error { return o.f.Close() }

// Size returns the object's uncompressed size, from its header.
func (o *GzipObject) Size() int64 { return o.size }

// ModTime returns when the object was written.
func (o *GzipObject) ModTime() time.Time { return o.modTime }

// GzipFile returns the open file of the stored gzip stream and its
// length, for a response with Content-Encoding: gzip. Its offset is shared
// with Read: use one or the other. Closing the Object closes it.
func (o *GzipObject) GzipFile() (*os.File, int64) { return o.f, o.stored }
