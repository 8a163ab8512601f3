// Package s3 is the S3 bulk.ObjectStore: output files (and spilled resource
// bodies, and import reports) as objects under a key prefix of one bucket.
//
// Writes stream through the SDK's transfer manager: a writer feeds an
// io.Pipe that the manager reads in parts, so an object of any size is
// uploaded as it is written (multipart above one part) and becomes visible
// only when the upload completes at Close. The manager also makes plain-HTTP
// endpoints work (the SDK refuses unseekable bodies without TLS), which is
// how the tests reach gofakes3 and how LocalStack is reached.
//
// Objects can be stored gzip-compressed with Content-Encoding: gzip
// (Options.Gzip), so a presigned download is compressed on the wire; Open
// still reads the uncompressed bytes.
//
// An open Object is pinned to the version it opened (versioned bucket) or to
// its ETag, so a replace or delete never changes what a download reads
// (R81); in a bucket without versioning, a Seek after a replace fails
// instead of mixing versions.
package s3

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/gzip"

	"github.com/tranchehq/tranche/internal/bulk"
)

// API is the part of the S3 client the store calls; *s3.Client implements
// it.
type API interface {
	manager.UploadAPIClient
	GetObject(ctx context.Context, in *s3sdk.GetObjectInput, opts ...func(*s3sdk.Options)) (*s3sdk.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3sdk.ListObjectsV2Input, opts ...func(*s3sdk.Options)) (*s3sdk.ListObjectsV2Output, error)
	DeleteObjects(ctx context.Context, in *s3sdk.DeleteObjectsInput, opts ...func(*s3sdk.Options)) (*s3sdk.DeleteObjectsOutput, error)
}

var _ API = (*s3sdk.Client)(nil)

// Options configure a Store.
type Options struct {
	// Bucket holds the objects.
	Bucket string
	// Prefix is prepended to every key ("exports/"), so one bucket holds
	// several stores and lifecycle rules can tell them apart.
	Prefix string
	// Gzip stores objects gzip-compressed with Content-Encoding: gzip.
	// Objects must stay under 4 GiB uncompressed (Size comes from the gzip
	// trailer).
	Gzip bool
	// PartSize and Concurrency configure the transfer manager per upload:
	// memory is about PartSize × (Concurrency + 1) per open writer.
	// Defaults: 5 MiB (S3's minimum) and 2.
	PartSize    int64
	Concurrency int
	// ContentType is stored with each object (default
	// application/fhir+ndjson).
	ContentType string
}

// Store is a bulk.ObjectStore on S3. It is safe for concurrent use.
type Store struct {
	api      API
	uploader *manager.Uploader
	presign  *s3sdk.PresignClient
	opts     Options
}

var _ bulk.ObjectStore = (*Store)(nil)

// New returns a store of the objects under opts.Prefix in opts.Bucket.
// client is usually an *s3.Client, which also makes PresignGet work.
func New(client API, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, bulk.Errorf(bulk.EINVALID, "The S3 bucket is not set.")
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		return nil, bulk.Errorf(bulk.EINVALID, "The S3 key prefix %q must end with a slash.", opts.Prefix)
	}
	if opts.PartSize == 0 {
		opts.PartSize = manager.MinUploadPartSize
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 2
	}
	if opts.ContentType == "" {
		opts.ContentType = "application/fhir+ndjson"
	}
	s := &Store{
		api:  client,
		opts: opts,
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize, u.Concurrency = opts.PartSize, opts.Concurrency
		}),
	}
	if c, ok := client.(*s3sdk.Client); ok {
		s.presign = s3sdk.NewPresignClient(c)
	}
	return s, nil
}

// metaEncoding marks objects this store compressed, so Open decompresses
// exactly those (an uploaded .ndjson.gz file is read as it is).
const metaEncoding = "tranche-encoding"

func (s *Store) objectKey(key string) string { return s.opts.Prefix + key }

// Create starts an upload of key. Nothing is visible until Close returns
// nil; Close fails, and publishes nothing, if ctx is done by then.
func (s *Store) Create(ctx context.Context, key string) (_ bulk.ObjectWriter, err error) {
	defer bulk.Wrap(&err, "s3.Store.Create(%q)", key)
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := bulk.CheckObjectKey(key); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &writer{ctx: ctx, key: key, pw: pw, done: make(chan struct{})}
	w.buf = bufio.NewWriterSize(pw, 256<<10)
	w.out = w.buf
	in := &s3sdk.PutObjectInput{
		Bucket:      aws.String(s.opts.Bucket),
		Key:         aws.String(s.objectKey(key)),
		Body:        pr,
		ContentType: aws.String(s.opts.ContentType),
	}
	if s.opts.Gzip {
		in.ContentEncoding = aws.String("gzip")
		in.Metadata = map[string]string{metaEncoding: "gzip"}
		w.gz = gzip.NewWriter(w.buf)
		w.out = w.gz
	}
	go func() {
		defer close(w.done)
		_, err := s.uploader.Upload(ctx, in)
		w.err = err
		// Unblock a Write that the manager will no longer read.
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
	}()
	return w, nil
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// writer is an upload in progress. Like any io.Writer it is not safe for
// concurrent use.
type writer struct {
	ctx   context.Context
	key   string
	pw    *io.PipeWriter
	buf   *bufio.Writer
	gz    *gzip.Writer
	out   io.Writer
	done  chan struct{}
	err   error // the upload's result, once done is closed
	state int   // 0 writing, 1 closed, 2 aborted
}

var errAborted = errors.New("upload aborted")

func (w *writer) Write(p []byte) (int, error) {
	if w.state != 0 {
		return 0, bulk.Errorf(bulk.EINTERNAL, "Object writer for %q is closed.", w.key)
	}
	n, err := w.out.Write(p)
	if err != nil {
		return n, translate(err, "Writing the object failed.")
	}
	return n, nil
}

// Close ends the stream and waits for the upload to complete.
func (w *writer) Close() (err error) {
	defer bulk.Wrap(&err, "s3.Store: Close(%q)", w.key)
	if w.state != 0 {
		return bulk.Errorf(bulk.EINTERNAL, "Object writer for %q is closed.", w.key)
	}
	if err := ctxErr(w.ctx); err != nil {
		w.Abort()
		return err
	}
	w.state = 2 // until the upload succeeds
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			w.pw.CloseWithError(errAborted)
			<-w.done
			return translate(err, "Writing the object failed.")
		}
	}
	if err := w.buf.Flush(); err != nil {
		w.pw.CloseWithError(errAborted)
		<-w.done
		return translate(err, "Writing the object failed.")
	}
	w.pw.Close()
	<-w.done
	if w.err != nil {
		return translate(w.err, "Uploading the object failed.")
	}
	w.state = 1
	return nil
}

// Abort fails the upload (the manager aborts a multipart upload) and waits
// for it. After Close it does nothing.
func (w *writer) Abort() error {
	if w.state == 1 {
		return nil
	}
	w.state = 2
	w.pw.CloseWithError(errAborted) // a no-op once the pipe is closed
	<-w.done
	return nil
}

// Open reads an object. Returns ENOTFOUND if it does not exist.
func (s *Store) Open(ctx context.Context, key string) (_ bulk.Object, err error) {
	defer bulk.Wrap(&err, "s3.Store.Open(%q)", key)
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	if err := bulk.CheckObjectKey(key); err != nil {
		return nil, err
	}
	out, err := s.api.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.objectKey(key))})
	if err != nil {
		return nil, translate(err, "Reading the object failed.")
	}
	o := &Object{
		store: s, key: s.objectKey(key), body: out.Body,
		version: aws.ToString(out.VersionId), etag: aws.ToString(out.ETag),
		modTime: aws.ToTime(out.LastModified), size: aws.ToInt64(out.ContentLength),
		gzipped: out.Metadata[metaEncoding] == "gzip",
	}
	if o.gzipped {
		// The gzip trailer's ISIZE is the uncompressed size mod 2^32.
		tail, err := o.get(ctx, fmt.Sprintf("bytes=%d-", max(o.size-4, 0)))
		if err != nil {
			out.Body.Close()
			return nil, err
		}
		var t [4]byte
		_, err = io.ReadFull(tail.Body, t[:])
		tail.Body.Close()
		if err != nil {
			out.Body.Close()
			return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Reading the object failed.")
		}
		o.size = int64(binary.LittleEndian.Uint32(t[:]))
		if o.body, err = newGzipBody(out.Body); err != nil {
			return nil, err
		}
	}
	o.ctx = context.WithoutCancel(ctx)
	return o, nil
}

// Object is an open S3 object, pinned to the version it opened.
type Object struct {
	store   *Store
	ctx     context.Context
	key     string
	version string
	etag    string
	size    int64
	modTime time.Time
	gzipped bool

	mu   sync.Mutex
	body io.ReadCloser // nil after a Seek until the next Read
	pos  int64
}

var _ bulk.Object = (*Object)(nil)

func (o *Object) get(ctx context.Context, rng string) (*s3sdk.GetObjectOutput, error) {
	in := &s3sdk.GetObjectInput{Bucket: aws.String(o.store.opts.Bucket), Key: aws.String(o.key)}
	if o.version != "" {
		in.VersionId = aws.String(o.version)
	} else if o.etag != "" {
		in.IfMatch = aws.String(o.etag)
	}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := o.store.api.GetObject(ctx, in)
	if err != nil {
		return nil, translate(err, "Reading the object failed.")
	}
	return out, nil
}

// Read reads the object's (uncompressed) bytes.
func (o *Object) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		if err := o.reopen(); err != nil {
			return 0, err
		}
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	if err == io.EOF && o.pos < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// reopen starts reading at o.pos: a ranged GET of the stored bytes, or for
// a gzipped object a GET from the start whose first o.pos bytes are
// skipped.
func (o *Object) reopen() error {
	if !o.gzipped {
		out, err := o.get(o.ctx, fmt.Sprintf("bytes=%d-", o.pos))
		if err != nil {
			return err
		}
		o.body = out.Body
		return nil
	}
	out, err := o.get(o.ctx, "")
	if err != nil {
		return err
	}
	body, err := newGzipBody(out.Body)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, body, o.pos); err != nil {
		body.Close()
		return bulk.Wrapf(err, bulk.EINTERNAL, "Reading the object failed.")
	}
	o.body = body
	return nil
}

// Seek sets the offset of the next Read; the next Read after a move opens a
// new ranged GET of the pinned version.
func (o *Object) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	abs, err := bulk.SeekTarget(o.pos, o.size, offset, whence)
	if err != nil {
		return 0, err
	}
	if abs != o.pos && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.pos = abs
	return abs, nil
}

// Close closes the current response body.
func (o *Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
	return nil
}

// Size returns the object's uncompressed size.
func (o *Object) Size() int64 { return o.size }

// ModTime returns when the object was written.
func (o *Object) ModTime() time.Time { return o.modTime }

// gzipBody decompresses a response body and closes it with itself.
type gzipBody struct {
	*gzip.Reader
	body io.ReadCloser
}

func newGzipBody(body io.ReadCloser) (io.ReadCloser, error) {
	zr, err := gzip.NewReader(body)
	if err != nil {
		body.Close()
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "The stored object is not valid gzip.")
	}
	return gzipBody{zr, body}, nil
}

func (g gzipBody) Close() error {
	g.Reader.Close()
	return g.body.Close()
}

// List returns the keys under prefix in lexical order (S3 lists in UTF-8
// byte order, which is Go's string order).
func (s *Store) List(ctx context.Context, prefix string) (_ []string, err error) {
	defer bulk.Wrap(&err, "s3.Store.List(%q)", prefix)
	keys := []string{}
	err = s.list(ctx, prefix, func(k string) error {
		keys = append(keys, strings.TrimPrefix(k, s.opts.Prefix))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

func (s *Store) list(ctx context.Context, prefix string, fn func(objectKey string) error) error {
	p := s3sdk.NewListObjectsV2Paginator(s.api, &s3sdk.ListObjectsV2Input{
		Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(s.objectKey(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return translate(err, "Listing objects failed.")
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix, 1000 per
// request. An empty prefix is refused with EINVALID so that a blank job id
// never empties the store. In a versioned bucket this leaves delete markers;
// the lifecycle rules expire the noncurrent versions.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (err error) {
	defer bulk.Wrap(&err, "s3.Store.DeletePrefix(%q)", prefix)
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if prefix == "" {
		return bulk.Errorf(bulk.EINVALID, "Refusing to delete with an empty prefix.")
	}
	var batch []types.ObjectIdentifier
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := s.api.DeleteObjects(ctx, &s3sdk.DeleteObjectsInput{
			Bucket: aws.String(s.opts.Bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		batch = batch[:0]
		if err != nil {
			return translate(err, "Deleting objects failed.")
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				return bulk.Errorf(bulk.EINTERNAL, "Deleting %s failed: %s %s.", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
		return nil
	}
	err = s.list(ctx, prefix, func(k string) error {
		batch = append(batch, types.ObjectIdentifier{Key: aws.String(k)})
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// PresignGet returns a URL that downloads key without credentials until ttl
// has passed (and at the latest when the signing credentials expire: mint
// it at status time, short-lived). The response says
// application/fhir+ndjson.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (_ string, err error) {
	defer bulk.Wrap(&err, "s3.Store.PresignGet(%q)", key)
	if err := bulk.CheckObjectKey(key); err != nil {
		return "", err
	}
	if s.presign == nil {
		return "", bulk.Errorf(bulk.EINTERNAL, "This store cannot presign URLs.")
	}
	req, err := s.presign.PresignGetObject(ctx, &s3sdk.GetObjectInput{
		Bucket:              aws.String(s.opts.Bucket),
		Key:                 aws.String(s.objectKey(key)),
		ResponseContentType: aws.String(s.opts.ContentType),
	}, s3sdk.WithPresignExpires(ttl))
	if err != nil {
		return "", translate(err, "Signing the download URL failed.")
	}
	return req.URL, nil
}

// translate turns an SDK error into an application error: a missing key is
// ENOTFOUND, throttling, server errors and a done context are ETRANSIENT,
// anything else EINTERNAL with msg.
func translate(err error, msg string) error {
	var (
		nsk  *types.NoSuchKey
		nf   *types.NotFound
		api  smithy.APIError
		resp interface{ HTTPStatusCode() int }
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nsk), errors.As(err, &nf):
		return bulk.Wrapf(err, bulk.ENOTFOUND, "File not found.")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	case errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound"):
		return bulk.Wrapf(err, bulk.ENOTFOUND, "File not found.")
	case errors.As(err, &api) && (api.ErrorCode() == "SlowDown" || api.ErrorCode() == "InternalError" || api.ErrorCode() == "ServiceUnavailable"):
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Storage is busy; try again later.")
	case errors.As(err, &resp) && resp.HTTPStatusCode() >= 500:
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Storage is busy; try again later.")
	case errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusPreconditionFailed:
		return bulk.Wrapf(err, bulk.ECONFLICT, "The object changed while being read.")
	}
	return bulk.Wrapf(err, bulk.EINTERNAL, "%s", msg)
}

// ctxErr returns an ETRANSIENT error wrapping ctx.Err() once ctx is done.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	}
	return nil
}

// Get streams any object of the bucket, whatever its key: the files users
// drop for import are not named by the store's key rules. Returns ENOTFOUND
// if it does not exist.
func Get(ctx context.Context, client API, bucket, key string) (_ io.ReadCloser, err error) {
	defer bulk.Wrap(&err, "s3.Get(%q)", key)
	out, err := client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, translate(err, "Reading the object failed.")
	}
	return out.Body, nil
}
