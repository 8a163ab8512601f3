package awstest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// SQS is an in-process Amazon SQS with what the import's queue needs:
// standard queues with a visibility timeout and a redrive policy to a
// dead-letter queue, delivered to a Lambda function by EventSource as
// Lambda's event source mapping does. Its clock moves only by Advance (and
// EventSource.Drain), so no test sleeps for a visibility timeout.
//
// What it does not model: long polling, delay queues, FIFO, message
// attributes, retention (messages never expire), batch actions, and the
// "approximate" of SQS's counts and ordering: here they are exact, and
// messages are received in the order they were sent. There is no SQS
// emulator here to check it against; its semantics follow
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
// and .../sqs-dead-letter-queues.html.
type SQS struct {
	// Region and Account name the queues' ARNs.
	Region, Account string

	rec *Recorder // hears of each call when set

	mu     sync.Mutex
	now    time.Time
	queues map[string]*sqsQueue
	n      int    // for message ids and receipt handles
	url    string // the HTTP endpoint, once Serve started it
}

type sqsQueue struct {
	name        string
	visibility  time.Duration
	dlq         string // the redrive policy's deadLetterTargetArn, by name
	maxReceives int    // and maxReceiveCount
	msgs        []*sqsMessage
}

type sqsMessage struct {
	id, body, sender string
	receipt          string // the last receive's handle
	receives         int
	sent, first      time.Time
	visibleAt        time.Time
}

// NewSQS starts an SQS in the bench's account and region; rec, if not nil,
// records the calls made to it (Serve's callers and EventSource's).
func NewSQS(rec *Recorder) *SQS {
	return &SQS{
		Region: "us-east-1", Account: "123456789012", rec: rec,
		now:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		queues: map[string]*sqsQueue{},
	}
}

// CreateQueue adds a standard queue. With dlq (another queue's name) and
// maxReceives, a message received maxReceives times that becomes visible
// again moves to dlq instead of being received (the redrive policy).
func (s *SQS) CreateQueue(name string, visibility time.Duration, dlq string, maxReceives int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[name] = &sqsQueue{name: name, visibility: visibility, dlq: dlq, maxReceives: maxReceives}
	return s.arn(name)
}

// ARN is the ARN of the queue name.
func (s *SQS) ARN(name string) string {
	return s.arn(name)
}

func (s *SQS) arn(name string) string {
	return "arn:aws:sqs:" + s.Region + ":" + s.Account + ":" + name
}

// Now is the queues' clock.
func (s *SQS) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the queues' clock on.
func (s *SQS) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

func (s *SQS) queue(name string) (*sqsQueue, error) {
	q, ok := s.queues[name]
	if !ok {
		return nil, fmt.Errorf("awstest.SQS: no queue %q", name)
	}
	return q, nil
}

// SendMessage adds a message to queue, as S3 does for an event
// notification; it returns the message id.
func (s *SQS) SendMessage(queue, body string) (string, error) {
	return s.send(queue, body, "s3.amazonaws.com")
}

func (s *SQS) send(queue, body, sender string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return "", err
	}
	s.n++
	m := &sqsMessage{id: fmt.Sprintf("m-%04d", s.n), body: body, sender: sender, sent: s.now, visibleAt: s.now}
	q.msgs = append(q.msgs, m)
	return m.id, nil
}

// Receive receives up to max visible messages of queue as Lambda's event
// source mapping does, with the attributes Lambda passes in the event: each
// gets a new receipt handle, one more receive and is invisible for the
// queue's visibility timeout. A visible message that has been received
// maxReceives times moves to the dead-letter queue instead.
func (s *SQS) Receive(queue string, max int) ([]events.SQSMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(queue)
	if err != nil {
		return nil, err
	}
	var out []events.SQSMessage
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		switch {
		case m.visibleAt.After(s.now) || len(out) >= max:
			kept = append(kept, m)
		case q.dlq != "" && q.maxReceives > 0 && m.receives >= q.maxReceives:
			dlq, err := s.queue(q.dlq)
			if err != nil {
				return nil, err
			}
			// A standard queue keeps the message's id and enqueue time.
			moved := *m
			moved.receives, moved.receipt, moved.visibleAt = 0, "", s.now
			dlq.msgs = append(dlq.msgs, &moved)
		default:
			s.n++
			m.receives++
			if m.first.IsZero() {
				m.first = s.now
			}
			m.receipt = fmt.Sprintf("%s-r%04d", m.id, s.n)
			m.visibleAt = s.now.Add(q.visibility)
			kept = append(kept, m)
			out = append(out, s.event(q, m))
		}
	}
	q.msgs = kept
	return out, nil
}

func (s *SQS) event(q *sqsQueue, m *sqsMessage) events.SQSMessage {
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	sum := md5.Sum([]byte(m.body))
	return events.SQSMessage{
		MessageId: m.id, ReceiptHandle: m.receipt, Body: m.body, Md5OfBody: hex.EncodeToString(sum[:]),
		Attributes: map[string]string{
			"ApproximateReceiveCount": strconv.Itoa(m.receives), "SentTimestamp": ms(m.sent),
			"SenderId": m.sender, "ApproximateFirstReceiveTimestamp": ms(m.first),
		},
		EventSourceARN: s.arn(q.name), EventSource: "aws:sqs", AWSRegion: s.Region,
	}
}

// inFlight finds the message of queue whose latest receipt is receipt.
func (s *SQS) inFlight(queue, receipt string) (*sqsQueue, int, error) {
	q, err := s.queue(queue)
	if err != nil {
		return nil, 0, err
	}
	for i, m := range q.msgs {
		if receipt != "" && m.receipt == receipt {
			return q, i, nil
		}
	}
	return nil, 0, errReceipt
}

var errReceipt = fmt.Errorf("awstest.SQS: the receipt handle is not the latest of a message in the queue (ReceiptHandleIsInvalid)")

// DeleteMessage deletes the message received with receipt.
func (s *SQS) DeleteMessage(queue, receipt string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, i, err := s.inFlight(queue, receipt)
	if err != nil {
		return err
	}
	q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	return nil
}

// ChangeVisibility makes the message received with receipt visible again
// after d (ChangeMessageVisibility: from now, not from the receive).
func (s *SQS) ChangeVisibility(queue, receipt string, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, i, err := s.inFlight(queue, receipt)
	if err != nil {
		return err
	}
	q.msgs[i].visibleAt = s.now.Add(d)
	return nil
}

// Bodies returns the bodies of queue's messages, visible or in flight.
func (s *SQS) Bodies(queue string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if q, err := s.queue(queue); err == nil {
		for _, m := range q.msgs {
			out = append(out, m.body)
		}
	}
	return out
}

// Visible is queue's ApproximateNumberOfMessagesVisible, the dead-letter
// alarm's metric: the messages a receive could return now.
func (s *SQS) Visible(queue string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if q, err := s.queue(queue); err == nil {
		for _, m := range q.msgs {
			if !m.visibleAt.After(s.now) {
				n++
			}
		}
	}
	return n
}

// nextVisible is when the first invisible message of queue becomes
// visible, and whether there is one.
func (s *SQS) nextVisible(queue string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Time
	q, err := s.queue(queue)
	if err != nil {
		return at, false
	}
	for _, m := range q.msgs {
		if at.IsZero() || m.visibleAt.Before(at) {
			at = m.visibleAt
		}
	}
	return at, !at.IsZero()
}

func (s *SQS) nameOf(arnOrURL string) string {
	return arnOrURL[strings.LastIndexAny(arnOrURL, ":/")+1:]
}

// Send adds a message to the queue queueARN: the import's continuation
// (handler.ImportQueue), in process.
func (s *SQS) Send(_ context.Context, queueARN, body string) error {
	_, err := s.send(s.nameOf(queueARN), body, "in-process")
	return err
}

// Delay is ChangeVisibility for the queue queueARN (handler.ImportQueue).
func (s *SQS) Delay(_ context.Context, queueARN, receipt string, d time.Duration) error {
	return s.ChangeVisibility(s.nameOf(queueARN), receipt, d)
}

// EventSource is Lambda's event source mapping of an SQS queue with
// ReportBatchItemFailures: it receives batches and invokes the function
// synchronously; it deletes what the function processed (all of a batch
// unless the response lists failures) and nothing of a batch whose
// invocation failed, which becomes visible again after the visibility
// timeout (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
// A response naming a message not in the batch fails the whole batch, as
// on Lambda. It polls only when asked (Poll, Drain): no concurrency, no
// scaling, no throttling.
type EventSource struct {
	SQS       *SQS
	Queue     string
	BatchSize int
	// Principal is the function's role: the mapping receives and deletes
	// under it (recorded when the SQS records).
	Principal string
	Invoke    func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

	// Invocations counts the batches delivered; Failed those whose
	// invocation failed (a crash, a timeout, a handler error).
	Invocations, Failed int
}

// Poll receives one batch and invokes the function with it; it reports
// whether there was one.
func (e *EventSource) Poll(ctx context.Context) (bool, error) {
	e.record("ReceiveMessage")
	msgs, err := e.SQS.Receive(e.Queue, max(e.BatchSize, 1))
	if err != nil || len(msgs) == 0 {
		return false, err
	}
	e.Invocations++
	res, err := e.Invoke(ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		e.Failed++
		return true, nil
	}
	failed := map[string]bool{}
	for _, f := range res.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		delete(failed, m.MessageId)
	}
	if len(failed) > 0 {
		e.Failed++ // an identifier not in the batch: the whole batch failed
		return true, nil
	}
	for _, m := range msgs {
		if !slices.ContainsFunc(res.BatchItemFailures, func(f events.SQSBatchItemFailure) bool { return f.ItemIdentifier == m.MessageId }) {
			e.record("DeleteMessage")
			if err := e.SQS.DeleteMessage(e.Queue, m.ReceiptHandle); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// Drain polls until the queue is empty, moving the clock to the next
// message's visibility whenever none is visible: every message ends
// deleted or in the dead-letter queue. It gives up after limit polls.
func (e *EventSource) Drain(ctx context.Context, limit int) error {
	e.record("GetQueueAttributes") // the mapping reads the queue's settings
	for range limit {
		got, err := e.Poll(ctx)
		if err != nil {
			return err
		}
		if got {
			continue
		}
		at, ok := e.SQS.nextVisible(e.Queue)
		if !ok {
			return nil
		}
		if d := at.Sub(e.SQS.Now()); d > 0 {
			e.SQS.Advance(d)
		}
	}
	return fmt.Errorf("awstest.EventSource: %s not empty after %d polls (%d messages)", e.Queue, limit, len(e.SQS.Bodies(e.Queue)))
}

func (e *EventSource) record(op string) {
	if e.SQS.rec != nil && e.Principal != "" {
		e.SQS.rec.Record(Call{Principal: e.Principal, Action: "sqs:" + op, Resource: e.SQS.ARN(e.Queue), Via: "Lambda event source mapping"})
	}
}

// Serve starts an HTTP endpoint speaking SQS's JSON protocol for the
// functions' own calls (AWS_ENDPOINT_URL_SQS): GetQueueUrl, SendMessage
// and ChangeMessageVisibility, each recorded as its IAM action on the
// queue's ARN under the caller's access key id. It returns the URL.
func (s *SQS) Serve(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	tb.Cleanup(srv.Close)
	s.mu.Lock()
	s.url = srv.URL
	s.mu.Unlock()
	return srv.URL
}

func (s *SQS) serveHTTP(w http.ResponseWriter, req *http.Request) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "AmazonSQS.")
	var in struct {
		QueueName, QueueUrl, MessageBody, ReceiptHandle string
		VisibilityTimeout                               int
	}
	body, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(body, &in); err != nil {
		sqsError(w, "InvalidParameterValue", err.Error())
		return
	}
	name := in.QueueName
	if name == "" {
		name = s.nameOf(in.QueueUrl)
	}
	if s.rec != nil {
		s.rec.Record(Call{Principal: Principal(req), Action: "sqs:" + op, Resource: s.ARN(name), Via: "AmazonSQS." + op})
	}
	s.mu.Lock()
	_, exists := s.queues[name]
	base := s.url
	s.mu.Unlock()
	if !exists {
		sqsError(w, "QueueDoesNotExist", "The specified queue does not exist.")
		return
	}
	var out any
	switch op {
	case "GetQueueUrl":
		out = map[string]string{"QueueUrl": base + "/" + s.Account + "/" + name}
	case "SendMessage":
		id, err := s.send(name, in.MessageBody, Principal(req))
		if err != nil {
			sqsError(w, "QueueDoesNotExist", err.Error())
			return
		}
		sum := md5.Sum([]byte(in.MessageBody))
		out = map[string]string{"MessageId": id, "MD5OfMessageBody": hex.EncodeToString(sum[:])}
	case "ChangeMessageVisibility":
		if err := s.ChangeVisibility(name, in.ReceiptHandle, time.Duration(in.VisibilityTimeout)*time.Second); err != nil {
			sqsError(w, "ReceiptHandleIsInvalid", err.Error())
			return
		}
		out = map[string]string{}
	default:
		sqsError(w, "UnsupportedOperation", "awstest.SQS does not serve "+op+".")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

func sqsError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}

// S3Notification is the body S3 sends to a queue for an ObjectCreated:Put
// of key in bucket: one record, the key URL-encoded as S3 encodes it, the
// upload named by versionID and sequencer
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
func S3Notification(bucket, key, versionID, sequencer string) string {
	ev := events.S3Event{Records: []events.S3EventRecord{{
		EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: "us-east-1",
		EventTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EventName: "ObjectCreated:Put",
		S3: events.S3Entity{
			SchemaVersion: "1.0", ConfigurationID: "tranche-import",
			Bucket: events.S3Bucket{Name: bucket, Arn: "arn:aws:s3:::" + bucket},
			Object: events.S3Object{Key: strings.ReplaceAll(url.QueryEscape(key), "%2F", "/"), VersionID: versionID, Sequencer: sequencer},
		},
	}}}
	body, _ := json.Marshal(ev)
	return string(body)
}
