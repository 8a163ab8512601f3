package handler

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tranchehq/tranche/internal/bulk"
)

// ImportMaxReceives is the import queue's maxReceiveCount (template.yaml's
// RedrivePolicy; infra/ checks that they agree): the third delivery of a
// notification that fails is its last, reported as failed, and SQS then
// moves it to the dead-letter queue.
const ImportMaxReceives = 3

// ImportQueue is the queue that delivers the import's S3 notifications
// (SQSQueue on AWS).
type ImportQueue interface {
	// Send adds a message with body to the queue queueARN.
	Send(ctx context.Context, queueARN, body string) error
	// Delay makes the message of queueARN received with receiptHandle
	// visible again after d.
	Delay(ctx context.Context, queueARN, receiptHandle string, d time.Duration) error
}

// HandleSQS imports the objects of the S3 event notifications SQS
// delivers (S3 → SQS → Lambda, ReportBatchItemFailures): it reports the
// messages whose import failed, so that SQS delivers only those again and
// after ImportMaxReceives moves them to the dead-letter queue
// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
// The invocation itself fails only when it dies: a handler error would fail
// the whole batch.
//
// An import that cannot finish before the invocation's deadline (less
// Margin) stops, checkpoints and sends the rest of its message again as a
// new one, which resumes from the checkpoint: a continuation is a new
// delivery, not a retry, so a file of any size finishes without running
// into maxReceiveCount. A failed message is delayed (retryDelay) rather
// than left for the queue's visibility timeout (six function timeouts).
func (im *Importer) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	res := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	stop := im.stopper(ctx)
	for _, msg := range ev.Records {
		if err := im.message(ctx, msg, stop); err != nil {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return res, nil
}

// message imports the objects of one notification.
func (im *Importer) message(ctx context.Context, msg events.SQSMessage, stop func() bool) error {
	log := im.logger().With("message", msg.MessageId)
	var ev events.S3Event
	if err := json.Unmarshal([]byte(msg.Body), &ev); err != nil {
		// Never importable: it ends in the dead-letter queue, named there.
		log.Error("import: the message is not an S3 event notification", "err", err)
		return err
	}
	if len(ev.Records) == 0 {
		log.Info("import: ignoring a message without records (S3's s3:TestEvent)")
		return nil
	}
	at := attempt{n: receiveCount(msg), max: im.MaxReceives}
	for i, rec := range ev.Records {
		obj, ok := im.objectOf(rec)
		if !ok {
			continue
		}
		if stop != nil && stop() {
			return im.continueLater(ctx, msg, ev.Records[i:])
		}
		err := im.importObject(ctx, obj, at, stop)
		if errors.Is(err, errContinue) {
			return im.continueLater(ctx, msg, ev.Records[i:])
		}
		if err != nil {
			im.retryLater(ctx, msg, at)
			return err
		}
	}
	return nil
}

// receiveCount is the message's delivery, from the attribute Lambda
// passes (1 for the first).
func receiveCount(msg events.SQSMessage) int {
	n, _ := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	return n
}

// continueLater sends recs, the records msg has not finished, as a new
// message; msg then counts as processed. If the send fails, msg fails and
// is delivered again, resuming from the checkpoint all the same.
func (im *Importer) continueLater(ctx context.Context, msg events.SQSMessage, recs []events.S3EventRecord) error {
	if im.Queue == nil {
		return bulk.Errorf(bulk.EINTERNAL, "The import has no queue to continue in.")
	}
	body, err := json.Marshal(events.S3Event{Records: recs})
	if err != nil {
		return err
	}
	if err := im.Queue.Send(ctx, msg.EventSourceARN, string(body)); err != nil {
		im.logger().Error("import: sending the continuation failed; the message is delivered again", "message", msg.MessageId, "err", err)
		return err
	}
	im.logger().Info("import continues in another invocation", "message", msg.MessageId, "objects", len(recs))
	return nil
}

// retryLater delays a failed message's next delivery: after retryDelay,
// or at once for the final attempt, whose next receive moves it to the
// dead-letter queue. A failure leaves the queue's visibility timeout.
func (im *Importer) retryLater(ctx context.Context, msg events.SQSMessage, at attempt) {
	if im.Queue == nil {
		return
	}
	d := retryDelay(at.n)
	if at.final() {
		d = 0
	}
	if err := im.Queue.Delay(ctx, msg.EventSourceARN, msg.ReceiptHandle, d); err != nil {
		im.logger().Warn("import: delaying the retry failed; it waits for the visibility timeout", "message", msg.MessageId, "err", err)
	}
}

// retryDelay is the wait before delivery n+1 of a failed notification: 1,
// 4, then 15 minutes, so that a transient fault (throttling) passes and a
// lasting one reaches the dead-letter queue within the hour.
func retryDelay(n int) time.Duration {
	switch {
	case n <= 1:
		return time.Minute
	case n == 2:
		return 4 * time.Minute
	}
	return 15 * time.Minute
}

// stopper returns when an import should stop reading: Margin before ctx's
// deadline (the invocation's), at most a quarter of the time left; nil
// without a deadline.
func (im *Importer) stopper(ctx context.Context) func() bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	clock := im.clock()
	margin := im.Margin
	if margin <= 0 {
		margin = defaultImportMargin
	}
	margin = min(margin, deadline.Sub(clock())/4)
	stopAt := deadline.Add(-margin)
	return func() bool { return !clock().Before(stopAt) }
}
