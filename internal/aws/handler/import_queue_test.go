package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/mem"
)

// The import queue and its dead-letter queue as template.yaml makes them:
// a visibility timeout of six function timeouts, redrive after
// ImportMaxReceives receives.
const (
	importQueue  = "tranche-ImportQueue"
	deadLetters  = "tranche-ImportDeadLetterQueue"
	visibility   = 6 * 900 * time.Second
	drainLimit   = 200
	invocationTO = 15 * time.Minute
)

// queueBench drives the real handler (HandleSQS) with the SQS fake's event
// source mapping: S3 notifications in, deliveries, retries and the
// dead-letter queue as SQS and Lambda do them.
type queueBench struct {
	t       *testing.T
	s3      *awstest.FakeS3
	reports *s3.Store
	store   *mem.ResourceStore
	sqs     *awstest.SQS
	src     *awstest.EventSource
	im      *handler.Importer
	uploads int
	// attempts are the ApproximateReceiveCount of each delivery.
	attempts []string
}

func newQueueBench(t *testing.T) *queueBench {
	t.Helper()
	fake := awstest.NewS3(t)
	reports, err := s3.New(fake.Client, s3.Options{Bucket: fake.Bucket, Prefix: "import-reports/", ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	q := awstest.NewSQS(nil)
	q.CreateQueue(deadLetters, visibility, "", 0)
	q.CreateQueue(importQueue, visibility, deadLetters, handler.ImportMaxReceives)
	b := &queueBench{t: t, s3: fake, reports: reports, store: mem.NewResourceStore(4), sqs: q}
	b.im = &handler.Importer{
		Store: b.store,
		Fetch: func(ctx context.Context, k string) (io.ReadCloser, error) {
			return s3.Get(ctx, fake.Client, fake.Bucket, k)
		},
		Reports: reports, Prefix: "incoming/", TempDir: t.TempDir(),
		Queue: q, MaxReceives: handler.ImportMaxReceives, BatchSize: 10,
	}
	b.src = &awstest.EventSource{SQS: q, Queue: importQueue, BatchSize: 1, Invoke: b.invoke(b.im.HandleSQS)}
	return b
}

// invoke is the function as Lambda invokes it: each invocation with its
// own deadline.
func (b *queueBench) invoke(h func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		for _, m := range ev.Records {
			b.attempts = append(b.attempts, m.Attributes["ApproximateReceiveCount"])
		}
		clock := time.Now
		if b.im.Clock != nil {
			clock = b.im.Clock
		}
		ctx, cancel := context.WithDeadline(ctx, clock().Add(invocationTO))
		defer cancel()
		return h(ctx, ev)
	}
}

// drop uploads data under key and sends S3's notification of it to the
// import queue.
func (b *queueBench) drop(key, data string) {
	b.t.Helper()
	out, err := b.s3.Client.PutObject(context.Background(), &s3sdk.PutObjectInput{Bucket: aws.String(b.s3.Bucket), Key: aws.String(key), Body: strings.NewReader(data)})
	if err != nil {
		b.t.Fatal(err)
	}
	b.notify(key, aws.ToString(out.VersionId))
}

// notify sends S3's notification of an upload of key.
func (b *queueBench) notify(key, version string) {
	b.t.Helper()
	b.uploads++
	if _, err := b.sqs.SendMessage(importQueue, awstest.S3Notification(b.s3.Bucket, key, version, fmt.Sprintf("%016X", b.uploads))); err != nil {
		b.t.Fatal(err)
	}
}

func (b *queueBench) drain() {
	b.t.Helper()
	if err := b.src.Drain(context.Background(), drainLimit); err != nil {
		b.t.Fatal(err)
	}
}

// read returns an object under import-reports/ for key, or nil.
func (b *queueBench) read(key, name string) []byte {
	b.t.Helper()
	keys, err := b.reports.List(context.Background(), "")
	if err != nil {
		b.t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "-"+filepath.Base(key)+"/"+name) {
			o, err := b.reports.Open(context.Background(), k)
			if err != nil {
				b.t.Fatal(err)
			}
			defer o.Close()
			raw, _ := io.ReadAll(o)
			return raw
		}
	}
	return nil
}

func (b *queueBench) report(key string) handler.Report {
	b.t.Helper()
	var rep handler.Report
	raw := b.read(key, "report.json")
	if err := json.Unmarshal(raw, &rep); err != nil {
		b.t.Fatalf("report.json of %s = %s: %v", key, raw, err)
	}
	return rep
}

// ndjson is n Patients and one bad line.
func ndjson(prefix string, n int) string {
	var ls []string
	for i := range n {
		ls = append(ls, fmt.Sprintf(`{"resourceType":"Patient","id":"%s%d","gender":"other"}`, prefix, i))
		if i == n/2 {
			ls = append(ls, `{"resourceType":"Patient", not json`)
		}
	}
	return strings.Join(ls, "\n") + "\n"
}

// directStore imports data in one run, as `tranche import` does.
func directStore(t *testing.T, data string) *mem.ResourceStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "direct.ndjson")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	store := mem.NewResourceStore(4)
	if _, err := importer.Import(context.Background(), store, importer.Options{}, path); err != nil {
		t.Fatal(err)
	}
	return store
}

// contents maps each stored resource to its body without what storing
// sets (bulk.AppendContent), and its lastUpdated.
func contents(t *testing.T, store *mem.ResourceStore) (map[string]string, map[string]time.Time) {
	t.Helper()
	ctx := context.Background()
	counts, err := store.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, at := map[string]string{}, map[string]time.Time{}
	for _, typ := range slices.Sorted(maps.Keys(counts)) {
		err := store.List(ctx, typ, "", func(r *bulk.Resource, _ bulk.Cursor) error {
			ref := r.Type + "/" + r.ID
			if _, dup := body[ref]; dup {
				t.Errorf("%s is stored twice", ref)
			}
			body[ref], at[ref] = string(bulk.AppendContent(nil, r.Body)), r.LastUpdated
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return body, at
}

// TestImportQueueDeadLetter: an object whose import fails on every attempt
// is delivered ImportMaxReceives times, sooner than the visibility timeout
// each time (the handler delays a retry by 1, then 4 minutes, and makes the
// last failure visible at once), then SQS moves its notification to the
// dead-letter queue, where the alarm's metric counts it; report.json says
// it failed and why, client-safe.
func TestImportQueueDeadLetter(t *testing.T) {
	b := newQueueBench(t)
	b.im.Store = failingStore{b.store}
	const key = "incoming/drop/patients.ndjson"
	b.drop(key, ndjson("p", 5))
	start := b.sqs.Now()
	b.drain()

	if diff := cmp.Diff([]string{"1", "2", "3"}, b.attempts); diff != "" {
		t.Errorf("deliveries' receive counts (-want +got):\n%s", diff)
	}
	if got := b.sqs.Now().Sub(start); got != 5*time.Minute {
		t.Errorf("the retries took %v, want 5m (1m and 4m, not the %v visibility timeout)", got, visibility)
	}
	dead := b.sqs.Bodies(deadLetters)
	if len(dead) != 1 || !strings.Contains(dead[0], "incoming/drop/patients.ndjson") {
		t.Fatalf("dead-letter queue = %q, want the notification of %s", dead, key)
	}
	if n := b.sqs.Visible(deadLetters); n != 1 {
		t.Errorf("ApproximateNumberOfMessagesVisible of the dead-letter queue = %d, want 1 (the alarm fires above 0)", n)
	}
	if left := b.sqs.Bodies(importQueue); len(left) != 0 {
		t.Errorf("import queue holds %q, want nothing", left)
	}
	rep := b.report(key)
	if rep.Status != handler.StatusFailed || rep.Attempt != 3 || rep.MaxAttempts != 3 || rep.Invocations != 3 ||
		!strings.Contains(rep.Failure, "dead-letter queue") || !strings.Contains(rep.Failure, "The store is busy.") {
		t.Errorf("report = %+v, want failed on attempt 3 of 3, saying the store is busy", rep)
	}
	if strings.Contains(rep.Failure, "ddb") || strings.Contains(rep.Failure, "importer.Import") {
		t.Errorf("report failure %q carries internal text", rep.Failure)
	}
}

// failingStore fails every Put as a throttled table does once the SDK has
// given up.
type failingStore struct{ bulk.ResourceStore }

func (failingStore) Put(context.Context, []*bulk.Resource) error {
	return bulk.Errorf(bulk.ETRANSIENT, "The store is busy.")
}

// TestImportQueueKilled: an invocation killed mid-file (after its third
// checkpoint, its fourth batch stored but not checkpointed) writes
// nothing more, and its notification comes back after the visibility
// timeout; the next delivery resumes from the checkpoint, and the store
// ends with every resource once, as a direct import stores it, the
// resources stored before the kill not written again (bulk.SameContent),
// and the bad line reported once.
func TestImportQueueKilled(t *testing.T) {
	b := newQueueBench(t)
	const key = "incoming/drop/big.ndjson"
	data := ndjson("k", 60)
	kill := &killSwitch{after: 4}
	b.im.Store = &killableStore{ResourceStore: b.store, k: kill}
	b.im.Reports = &killableObjects{ObjectStore: b.reports, k: kill}
	b.im.Queue = killableQueue{ImportQueue: b.sqs, k: kill}
	handle := b.src.Invoke
	var before map[string]time.Time
	b.src.Invoke = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		res, err := handle(ctx, ev)
		if kill.tripped.Load() {
			// The runtime died: Lambda reports no response, and the next
			// invocation is a new process.
			_, before = contents(t, b.store)
			kill.reset()
			return res, fmt.Errorf("Runtime.ExitError: killed by the test")
		}
		return res, err
	}
	b.drop(key, data)
	b.drain()

	if b.src.Invocations != 2 || b.src.Failed != 1 {
		t.Errorf("invocations = %d (failed %d), want the killed one and its retry", b.src.Invocations, b.src.Failed)
	}
	if diff := cmp.Diff([]string{"1", "2"}, b.attempts); diff != "" {
		t.Errorf("deliveries' receive counts (-want +got):\n%s", diff)
	}
	if dead := b.sqs.Bodies(deadLetters); len(dead) != 0 {
		t.Errorf("dead-letter queue = %q, want nothing", dead)
	}
	if len(before) != 40 {
		t.Fatalf("the killed invocation stored %d resources, want 4 batches of 10", len(before))
	}
	want, _ := contents(t, directStore(t, data))
	got, after := contents(t, b.store)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store (-direct import +killed and resumed):\n%s", diff)
	}
	for ref, at := range before {
		if !after[ref].Equal(at) {
			t.Errorf("%s was written again after the kill (lastUpdated %v, then %v)", ref, at, after[ref])
		}
	}
	rep := b.report(key)
	// Read again and left unchanged: the fourth batch, stored but not
	// checkpointed, and the line whose Patient filled the third (a
	// checkpoint covers the lines before the one being read).
	if rep.Status != handler.StatusCompleted || rep.Invocations != 2 || rep.New != 50 || rep.Unchanged != 11 || rep.Refused != 1 || rep.ErrorsListed != 1 {
		t.Errorf("report = %+v, want completed in 2 invocations: 50 new, 11 read again unchanged, 1 refused", rep)
	}
	if lines := strings.Count(string(b.read(key, "errors.ndjson")), "\n"); lines != 1 {
		t.Errorf("errors.ndjson has %d lines, want the bad line once", lines)
	}
}

// killSwitch is a process dying: once tripped, every write of the
// invocation fails, as if nothing after that point ran.
type killSwitch struct {
	after   int32 // Puts that succeed; the next is stored, then the process dies
	puts    atomic.Int32
	tripped atomic.Bool
}

var errKilled = bulk.Errorf(bulk.ETRANSIENT, "killed")

func (k *killSwitch) reset() { k.tripped.Store(false); k.after = 1 << 30 }

type killableStore struct {
	bulk.ResourceStore
	k *killSwitch
}

func (s *killableStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	if s.k.tripped.Load() {
		return errKilled
	}
	if err := s.ResourceStore.Put(ctx, rs); err != nil {
		return err
	}
	if s.k.puts.Add(1) >= s.k.after {
		s.k.tripped.Store(true) // stored, then killed before its checkpoint
		return errKilled
	}
	return nil
}

func (s *killableStore) Delete(ctx context.Context, ref bulk.Ref, at time.Time) error {
	if s.k.tripped.Load() {
		return errKilled
	}
	return s.ResourceStore.Delete(ctx, ref, at)
}

type killableObjects struct {
	bulk.ObjectStore
	k *killSwitch
}

func (o *killableObjects) Create(ctx context.Context, key string) (bulk.ObjectWriter, error) {
	if o.k.tripped.Load() {
		return nil, errKilled
	}
	return o.ObjectStore.Create(ctx, key)
}

type killableQueue struct {
	handler.ImportQueue
	k *killSwitch
}

func (q killableQueue) Send(ctx context.Context, arn, body string) error {
	if q.k.tripped.Load() {
		return errKilled
	}
	return q.ImportQueue.Send(ctx, arn, body)
}

func (q killableQueue) Delay(ctx context.Context, arn, receipt string, d time.Duration) error {
	if q.k.tripped.Load() {
		return errKilled
	}
	return q.ImportQueue.Delay(ctx, arn, receipt, d)
}

// TestImportQueueContinues: a file too large for one invocation stops
// before the deadline, checkpoints and continues in a new message (a new
// delivery, receive count 1, not a retry counting towards the dead-letter
// queue), until it is imported, each line once: no line is read twice
// after a clean stop, and nothing reaches the dead-letter queue.
func TestImportQueueContinues(t *testing.T) {
	b := newQueueBench(t)
	// Every batch stored takes five minutes of the invocation's fifteen:
	// with the two-minute margin, an invocation stores three batches.
	var elapsed atomic.Int64
	base := time.Now()
	b.im.Clock = func() time.Time { return base.Add(time.Duration(elapsed.Load())) }
	b.im.Store = slowStore{ResourceStore: b.store, elapsed: &elapsed}
	const key = "incoming/drop/huge.ndjson"
	data := ndjson("h", 95)
	b.drop(key, data)
	b.drain()

	if b.src.Invocations < 3 || b.src.Failed != 0 {
		t.Errorf("invocations = %d (failed %d), want several, none failed", b.src.Invocations, b.src.Failed)
	}
	for i, n := range b.attempts {
		if n != "1" {
			t.Errorf("delivery %d has receive count %s: a continuation must be a new message", i+1, n)
		}
	}
	if dead := b.sqs.Bodies(deadLetters); len(dead) != 0 {
		t.Errorf("dead-letter queue = %q, want nothing", dead)
	}
	want, _ := contents(t, directStore(t, data))
	got, _ := contents(t, b.store)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store (-direct import +continued):\n%s", diff)
	}
	rep := b.report(key)
	if rep.Status != handler.StatusCompleted || rep.Invocations != b.src.Invocations || rep.New != 95 || rep.Unchanged != 0 || rep.Refused != 1 {
		t.Errorf("report = %+v, want completed in %d invocations, 95 new, 1 refused", rep, b.src.Invocations)
	}
}

type slowStore struct {
	bulk.ResourceStore
	elapsed *atomic.Int64
}

func (s slowStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	s.elapsed.Add(int64(5 * time.Minute))
	return s.ResourceStore.Put(ctx, rs)
}

// TestImportQueuePartialBatch: in a batch of three notifications whose
// second names an object that is not there, the response lists that one
// only, so the other two are deleted (imported once) and only it is
// delivered again, until the dead-letter queue.
func TestImportQueuePartialBatch(t *testing.T) {
	b := newQueueBench(t)
	b.src.BatchSize = 3
	var responses []events.SQSEventResponse
	var mu sync.Mutex
	handle := b.src.Invoke
	b.src.Invoke = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		res, err := handle(ctx, ev)
		mu.Lock()
		responses = append(responses, res)
		mu.Unlock()
		return res, err
	}
	b.drop("incoming/a.ndjson", ndjson("a", 3))
	b.notify("incoming/gone.ndjson", "v-gone") // deleted before the import
	b.drop("incoming/c.ndjson", ndjson("c", 3))
	b.drain()

	if len(responses) == 0 || len(responses[0].BatchItemFailures) != 1 || responses[0].BatchItemFailures[0].ItemIdentifier != "m-0002" {
		t.Fatalf("first response = %+v, want the second message only", responses)
	}
	if diff := cmp.Diff([]string{"1", "1", "1", "2", "3"}, b.attempts); diff != "" {
		t.Errorf("deliveries' receive counts (-want +got):\n%s", diff)
	}
	if counts, _ := b.store.Count(context.Background()); counts["Patient"] != 6 {
		t.Errorf("stored %v, want the 6 Patients of the two objects that are there", counts)
	}
	dead := b.sqs.Bodies(deadLetters)
	if len(dead) != 1 || !strings.Contains(dead[0], "gone.ndjson") {
		t.Errorf("dead-letter queue = %q, want the missing object's notification", dead)
	}
	if rep := b.report("incoming/gone.ndjson"); rep.Status != handler.StatusFailed || rep.Failure == "" {
		t.Errorf("report of the missing object = %+v, want failed with a reason", rep)
	}
	for _, k := range []string{"incoming/a.ndjson", "incoming/c.ndjson"} {
		if rep := b.report(k); rep.Status != handler.StatusCompleted || rep.Invocations != 1 {
			t.Errorf("report of %s = %+v, want completed in one invocation", k, rep)
		}
	}
}

// TestImportQueueMessages: S3's test event (sent when the notification is
// configured) is consumed without importing; a body that is no S3 event
// ends in the dead-letter queue; a notification delivered twice imports
// once; a new upload of the same key imports again.
func TestImportQueueMessages(t *testing.T) {
	b := newQueueBench(t)
	counting := &countingStore{ResourceStore: b.store}
	b.im.Store = counting
	b.sqs.SendMessage(importQueue, `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"tranche-test","RequestId":"R","HostId":"H"}`)
	b.sqs.SendMessage(importQueue, `not an S3 event`)
	const key = "incoming/twice.ndjson"
	out, err := b.s3.Client.PutObject(context.Background(), &s3sdk.PutObjectInput{Bucket: aws.String(b.s3.Bucket), Key: aws.String(key), Body: strings.NewReader(ndjson("t", 4))})
	if err != nil {
		t.Fatal(err)
	}
	body := awstest.S3Notification(b.s3.Bucket, key, aws.ToString(out.VersionId), "0001")
	b.sqs.SendMessage(importQueue, body)
	b.sqs.SendMessage(importQueue, body) // S3 delivers at least once
	b.drain()

	if dead := b.sqs.Bodies(deadLetters); len(dead) != 1 || dead[0] != "not an S3 event" {
		t.Errorf("dead-letter queue = %q, want the body that is not an S3 event", dead)
	}
	if n := counting.puts.Load(); n != 1 {
		t.Errorf("the store got %d batches, want the object's one batch once", n)
	}
	if rep := b.report(key); rep.Invocations != 1 || rep.New != 4 {
		t.Errorf("report = %+v, want one import of 4 Patients", rep)
	}
	b.drop(key, ndjson("t", 6)) // a new upload: two more Patients
	b.drain()
	if rep := b.report(key); rep.Invocations != 1 || rep.New != 2 || rep.Unchanged != 4 {
		t.Errorf("report after a new upload = %+v, want its own import: 2 new, 4 unchanged", rep)
	}
}

type countingStore struct {
	bulk.ResourceStore
	puts atomic.Int32
}

func (s *countingStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	s.puts.Add(1)
	return s.ResourceStore.Put(ctx, rs)
}

// TestImportSQSFixture: events/import-sqs.json is what the function gets
// for events/import.json's notification, and imports its object.
func TestImportSQSFixture(t *testing.T) {
	b := newQueueBench(t)
	ev := loadEvent[events.SQSEvent](t, "import-sqs.json")
	var s3ev events.S3Event
	if err := json.Unmarshal([]byte(ev.Records[0].Body), &s3ev); err != nil {
		t.Fatalf("the fixture's body is not an S3 event: %v", err)
	}
	const key = "incoming/synthea sample/patients.ndjson"
	if got := s3ev.Records[0].S3.Object.URLDecodedKey; got != key {
		t.Fatalf("the fixture names %q, want %q", got, key)
	}
	if _, err := b.s3.Client.PutObject(context.Background(), &s3sdk.PutObjectInput{Bucket: aws.String(b.s3.Bucket), Key: aws.String(key), Body: strings.NewReader(ndjson("f", 2))}); err != nil {
		t.Fatal(err)
	}
	res, err := b.im.HandleSQS(context.Background(), ev)
	if err != nil || len(res.BatchItemFailures) != 0 {
		t.Fatalf("HandleSQS(import-sqs.json) = %+v, %v", res, err)
	}
	if rep := b.report(key); rep.Status != handler.StatusCompleted || rep.Attempt != 1 || rep.New != 2 {
		t.Errorf("report = %+v", rep)
	}
}

// TestSQSQueue: the adapter over the SDK against the fake's JSON protocol
// endpoint (which the Lambda bench's functions call): a continuation
// arrives, a delay changes the message's visibility, and the queue URL is
// looked up once.
func TestSQSQueue(t *testing.T) {
	rec := awstest.NewRecorder()
	q := awstest.NewSQS(rec)
	arn := q.CreateQueue(importQueue, visibility, "", 0)
	cfg := awstest.Config()
	client := sqssdk.NewFromConfig(cfg, func(o *sqssdk.Options) { o.BaseEndpoint = aws.String(q.Serve(t)) })
	queue := handler.NewSQSQueue(client)
	ctx := context.Background()
	if err := queue.Send(ctx, arn, "continue"); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(importQueue, 1)
	if err != nil || len(msgs) != 1 || msgs[0].Body != "continue" {
		t.Fatalf("Receive = %+v, %v", msgs, err)
	}
	if err := queue.Delay(ctx, arn, msgs[0].ReceiptHandle, time.Minute); err != nil {
		t.Fatal(err)
	}
	q.Advance(time.Minute - time.Second)
	if n := q.Visible(importQueue); n != 0 {
		t.Errorf("visible before the delay = %d", n)
	}
	q.Advance(time.Second)
	if n := q.Visible(importQueue); n != 1 {
		t.Errorf("visible after the delay = %d, want 1", n)
	}
	var got []string
	for _, c := range rec.Calls() {
		got = append(got, c.Action+" "+c.Resource)
	}
	want := []string{"sqs:GetQueueUrl " + arn, "sqs:SendMessage " + arn, "sqs:ChangeMessageVisibility " + arn}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if err := queue.Send(ctx, "arn:aws:sqs:us-east-1:123456789012:nope", "x"); bulk.ErrorCode(err) != bulk.ETRANSIENT {
		t.Errorf("Send(unknown queue) = %v, want %s", err, bulk.ETRANSIENT)
	}
}
