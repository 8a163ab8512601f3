package handler

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqssdk "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tranchehq/tranche/internal/bulk"
)

// SQSAPI is the part of the SQS client SQSQueue calls.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, in *sqssdk.GetQueueUrlInput, opts ...func(*sqssdk.Options)) (*sqssdk.GetQueueUrlOutput, error)
	SendMessage(ctx context.Context, in *sqssdk.SendMessageInput, opts ...func(*sqssdk.Options)) (*sqssdk.SendMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqssdk.ChangeMessageVisibilityInput, opts ...func(*sqssdk.Options)) (*sqssdk.ChangeMessageVisibilityOutput, error)
}

// SQSQueue is the ImportQueue on Amazon SQS. It names a queue by the ARN
// Lambda's event gives (eventSourceARN), so the function needs no queue
// URL in its environment: it asks GetQueueUrl once per queue.
type SQSQueue struct {
	api  SQSAPI
	mu   sync.Mutex
	urls map[string]string // queue ARN → URL
}

var _ ImportQueue = (*SQSQueue)(nil)

// NewSQSQueue returns the queue over client (sqs.NewFromConfig).
func NewSQSQueue(client SQSAPI) *SQSQueue {
	return &SQSQueue{api: client, urls: map[string]string{}}
}

// Send adds a message with body to the queue queueARN.
func (q *SQSQueue) Send(ctx context.Context, queueARN, body string) (err error) {
	defer bulk.Wrap(&err, "SQSQueue.Send(%q)", queueARN)
	u, err := q.url(ctx, queueARN)
	if err != nil {
		return err
	}
	if _, err := q.api.SendMessage(ctx, &sqssdk.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String(body)}); err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "The import queue is unavailable.")
	}
	return nil
}

// Delay makes the message received with receiptHandle visible again after
// d, at most 12 hours (the ChangeMessageVisibility limit).
func (q *SQSQueue) Delay(ctx context.Context, queueARN, receiptHandle string, d time.Duration) (err error) {
	defer bulk.Wrap(&err, "SQSQueue.Delay(%q)", queueARN)
	u, err := q.url(ctx, queueARN)
	if err != nil {
		return err
	}
	secs := int32(min(max(d, 0), 12*time.Hour) / time.Second)
	_, err = q.api.ChangeMessageVisibility(ctx, &sqssdk.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(u), ReceiptHandle: aws.String(receiptHandle), VisibilityTimeout: secs,
	})
	if err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "The import queue is unavailable.")
	}
	return nil
}

// url returns the URL of the queue arn:partition:sqs:region:account:name.
func (q *SQSQueue) url(ctx context.Context, arn string) (string, error) {
	q.mu.Lock()
	u, ok := q.urls[arn]
	q.mu.Unlock()
	if ok {
		return u, nil
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", bulk.Errorf(bulk.EINVALID, "%q is not an SQS queue ARN.", arn)
	}
	out, err := q.api.GetQueueUrl(ctx, &sqssdk.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", bulk.Wrapf(err, bulk.ETRANSIENT, "The import queue is unavailable.")
	}
	u = aws.ToString(out.QueueUrl)
	q.mu.Lock()
	q.urls[arn] = u
	q.mu.Unlock()
	return u, nil
}
