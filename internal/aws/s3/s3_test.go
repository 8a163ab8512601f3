package s3_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

func open(t *testing.T, opts s3.Options) (*s3.Store, *s3sdk.Client) {
	t.Helper()
	client, bucket := awstest.S3(t)
	opts.Bucket = bucket
	st, err := s3.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st, client
}

func TestObjectStore(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		st, _ := open(t, s3.Options{Prefix: "exports/"})
		return st
	})
}

func TestObjectStoreGzip(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		st, _ := open(t, s3.Options{Gzip: true})
		return st
	})
}

// TestMultipart writes more than two parts through the transfer manager,
// in small writes as the export path does, and reads them back.
func TestMultipart(t *testing.T) {
	fake := awstest.NewS3(t)
	client := fake.Client
	st, err := s3.New(client, s3.Options{Bucket: fake.Bucket, Prefix: "exports/"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	line := []byte(`{"resourceType":"Observation","id":"0123456789","status":"final"}` + "\n")
	data := bytes.Repeat(line, 12<<20/len(line)) // 12 MiB: three 5 MiB parts
	w, err := st.Create(ctx, "job/big.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for chunk := range bytes.Lines(data) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	head, err := client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: aws.String("tranche-test"), Key: aws.String("exports/job/big.ndjson")})
	if err != nil {
		t.Fatal(err)
	}
	var parts, completes int
	for _, r := range fake.Requests() {
		switch {
		case strings.HasPrefix(r, "PUT ") && strings.Contains(r, "partNumber="):
			parts++
		case strings.HasPrefix(r, "POST ") && strings.Contains(r, "uploadId="):
			completes++
		}
	}
	if parts != 3 || completes != 1 {
		t.Errorf("uploaded %d parts and completed %d uploads, want 3 parts in 1 upload", parts, completes)
	}
	if got := aws.ToString(head.ContentType); got != "application/fhir+ndjson" {
		t.Errorf("Content-Type = %q, want application/fhir+ndjson", got)
	}
	o, err := st.Open(ctx, "job/big.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want the %d written", len(got), err, len(data))
	}
}

// TestGzipObject checks what a presigned download of a gzip object sends:
// Content-Encoding: gzip and the compressed bytes.
func TestGzipObject(t *testing.T) {
	st, _ := open(t, s3.Options{Prefix: "exports/", Gzip: true})
	ctx := context.Background()
	data := bytes.Repeat([]byte(`{"resourceType":"Patient","id":"p"}`+"\n"), 1000)
	w, err := st.Create(ctx, "job/Patient.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	url, err := st.PresignGet(ctx, "job/Patient.ndjson", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Go's transport would decompress transparently; ask for the raw bytes.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "application/fhir+ndjson" {
		t.Fatalf("GET presigned = %d, Content-Encoding %q, Content-Type %q; want 200 gzip application/fhir+ndjson",
			resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"))
	}
	if len(raw) >= len(data)/5 {
		t.Errorf("stored %d bytes for %d: not compressed", len(raw), len(data))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, data) {
		t.Errorf("decompressed download = %d bytes, want the %d written", len(got), len(data))
	}
}

func TestPresignGet(t *testing.T) {
	st, _ := open(t, s3.Options{Prefix: "exports/"})
	ctx := context.Background()
	w, _ := st.Create(ctx, "job/a.ndjson")
	w.Write([]byte("x\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignGet(ctx, "job/a.ndjson", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/tranche-test/exports/job/a.ndjson?", "X-Amz-Expires=300", "X-Amz-Signature=", "response-content-type=application%2Ffhir%2Bndjson"} {
		if !strings.Contains(u, want) {
			t.Errorf("PresignGet = %s, want it to contain %s", u, want)
		}
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "x\n" {
		t.Errorf("GET presigned = %d %q, want 200 %q", resp.StatusCode, body, "x\n")
	}
	if _, err := st.PresignGet(ctx, "../x", time.Minute); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("PresignGet(../x) error = %v, want %s", err, bulk.EINVALID)
	}
}

func TestNew(t *testing.T) {
	client, _ := awstest.S3(t)
	for _, opts := range []s3.Options{{}, {Bucket: "b", Prefix: "no-slash"}} {
		if _, err := s3.New(client, opts); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("New(%+v) error = %v, want %s", opts, err, bulk.EINVALID)
		}
	}
}

// TestAbortMultipart aborts an upload that has sent parts: the multipart
// upload is aborted (no orphaned parts) and nothing is visible.
func TestAbortMultipart(t *testing.T) {
	fake := awstest.NewS3(t)
	st, err := s3.New(fake.Client, s3.Options{Bucket: fake.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := st.Create(ctx, "job/aborted.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 12 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	var aborted bool
	for _, r := range fake.Requests() {
		aborted = aborted || (strings.HasPrefix(r, "DELETE ") && strings.Contains(r, "uploadId="))
	}
	if !aborted {
		t.Errorf("requests %v: want the multipart upload aborted", fake.Requests())
	}
	if _, err := st.Open(ctx, "job/aborted.ndjson"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("Open after Abort error = %v, want %s", err, bulk.ENOTFOUND)
	}
}
