package sdkretry

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// TestRetryer: a body cut short is retried; a modeled client error is not.
func TestRetryer(t *testing.T) {
	r := Retryer()
	cut := &smithy.DeserializationError{Err: fmt.Errorf("decode: %w", io.ErrUnexpectedEOF)}
	if !r.IsErrorRetryable(cut) {
		t.Errorf("a truncated response is not retried")
	}
	if r.IsErrorRetryable(&smithy.GenericAPIError{Code: "ValidationException"}) {
		t.Errorf("a ValidationException is retried")
	}
	if r.IsErrorRetryable(errors.New("other")) {
		t.Errorf("an unknown error is retried")
	}
	if truncated(nil) != aws.UnknownTernary {
		t.Errorf("nil is not unknown")
	}
}
