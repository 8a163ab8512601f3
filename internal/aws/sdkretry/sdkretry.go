// Package sdkretry is the SDK retry policy every AWS client of Tranche
// uses: the SDK's standard retryer, plus a response cut short.
package sdkretry

import (
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// Retryer returns the standard retryer that also retries a request whose
// response body ended early (io.ErrUnexpectedEOF while decoding it). The
// SDK retries a connection reset but not a 200 whose body stops short,
// which a loaded emulator (dynalite) and, rarely, a network path produce.
// A retried write may find its own earlier success (a condition fails):
// every conditional write here already reads that as a conflict and looks
// again, where the truncated answer would have been an internal error.
func Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(truncated))
	})
}

func truncated(err error) aws.Ternary {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}
