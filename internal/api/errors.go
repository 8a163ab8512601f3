package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// The one mapping from application error codes to HTTP (style.md rule 3):
// status, and the OperationOutcome issue code (FHIR IssueType).
var codes = map[string]struct {
	status int
	issue  string
}{
	bulk.EINVALID:         {http.StatusBadRequest, "invalid"},
	bulk.EUNSUPPORTED:     {http.StatusBadRequest, "not-supported"},
	bulk.ENOTFOUND:        {http.StatusNotFound, "not-found"},
	bulk.ECONFLICT:        {http.StatusConflict, "conflict"},
	bulk.EUNAUTHORIZED:    {http.StatusUnauthorized, "login"},
	bulk.EFORBIDDEN:       {http.StatusForbidden, "forbidden"},
	bulk.ENOTACCEPTABLE:   {http.StatusNotAcceptable, "not-supported"},
	bulk.EMETHOD:          {http.StatusMethodNotAllowed, "not-supported"},
	bulk.ETOOMANYREQUESTS: {http.StatusTooManyRequests, "throttled"},
	bulk.EGONE:            {http.StatusGone, "not-found"},
	bulk.ETRANSIENT:       {http.StatusServiceUnavailable, "transient"},
	bulk.ENOSPACE:         {http.StatusInsufficientStorage, "too-costly"},
	bulk.EINTERNAL:        {http.StatusInternalServerError, "exception"},
}

// writeError writes err as an OperationOutcome (R6). Internal errors are
// logged with their cause and shown to the client only as "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := bulk.ErrorCode(err)
	c, ok := codes[code]
	if !ok {
		c = codes[bulk.EINTERNAL]
	}
	if c.status >= 500 {
		logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	switch c.status {
	case http.StatusUnauthorized:
		// RFC 6750 §3.
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		secs := 5
		var ra retryAfter
		var hint interface{ RetryAfter() time.Duration } // e.g. the export service's space budget
		if errors.As(err, &ra) {
			secs = int((time.Duration(ra) + time.Second - 1) / time.Second)
		} else if errors.As(err, &hint) {
			secs = int((hint.RetryAfter() + time.Second - 1) / time.Second)
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	severity := "error"
	if c.status >= 500 {
		severity = "fatal"
	}
	writeFHIR(w, c.status, fhir.Outcome(severity, c.issue, bulk.ErrorMessage(err)))
}

// writeFHIR writes a FHIR JSON resource.
func writeFHIR(w http.ResponseWriter, status int, v any) {
	writeJSON(w, "application/fhir+json", status, v)
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, fhir.Outcome("fatal", "exception", "Internal error.").JSON()
	}
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
