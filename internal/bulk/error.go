// Package bulk is Tranche's domain: export jobs, stored resources and the small
// ports (JobStore, ResourceSource, ResourceSink, ObjectStore, Workflow) that the
// local and AWS adapters implement. It imports only the standard library.
package bulk

import (
	"context"
	"errors"
	"fmt"
)

// Error codes. They are close to gcerrors so adapters translate SDK errors into
// them at their boundary; internal/api maps them to HTTP in one table.
const (
	EINVALID         = "invalid"            // bad client input (400)
	ENOTFOUND        = "not_found"          // no such job, group, file (404)
	ECONFLICT        = "conflict"           // failed conditional write
	EUNAUTHORIZED    = "unauthorized"       // no or bad credentials (401)
	EFORBIDDEN       = "forbidden"          // authenticated but not allowed (403)
	ENOTACCEPTABLE   = "not_acceptable"     // Accept header we cannot honour (406)
	EMETHOD          = "method_not_allowed" // a method the route does not take (405, with Allow)
	ETOOMANYREQUESTS = "too_many_requests"  // quota or poll rate (429)
	EUNSUPPORTED     = "not_supported"      // a valid but unsupported request (400)
	EGONE            = "gone"               // expired (410)
	ETRANSIENT       = "transient"          // retry later (503)
	ENOSPACE         = "no_space"           // the object store is out of space (507)
	EINTERNAL        = "internal"           // everything else (500)
)

// Error is an application error. Message is safe to show to a client; Err is
// the wrapped cause and is only logged.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an application error with a formatted client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrapf returns an application error that wraps cause.
func Wrapf(cause error, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// ErrorCode returns the code of the first application error in err's chain,
// EINTERNAL for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err. Errors that are not
// application errors say "Internal error." so internal text never leaks.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "Internal error."
}

// Wrap adds context to *errp in the pkgsite style:
//
//	defer bulk.Wrap(&err, "JobStore.Get(%q)", id)
//
// The code and client message of an application error are kept.
func Wrap(errp *error, format string, args ...any) {
	if *errp == nil {
		return
	}
	*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
}

// StepErrorName is the error name under which a workflow step's error
// reaches the state machine's Retry and Catch, on AWS (the Lambda's
// errorType) and locally alike: the error's own ErrorName (ExportError,
// Transient), "Transient" for a cancelled or expired context (the step ran
// out of time), and "Error" for any other.
func StepErrorName(err error) string {
	var named interface{ ErrorName() string }
	switch {
	case errors.As(err, &named):
		return named.ErrorName()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "Transient"
	}
	return "Error"
}
