package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// OAuthError is an RFC 6749 §5.2 error response of the token endpoint, or an
// RFC 7591 §3.2.2 error of the registration endpoint. Code and Description
// are sent to the client; Err is the cause and is only logged.
//
// Callers refine a copy of one of the prototype values, fosite-style:
//
//	ErrInvalidClient.WithDescription("The assertion has expired.").WithWrap(err)
type OAuthError struct {
	Code        string // "invalid_client", ...
	Description string // client-safe error_description
	Status      int    // HTTP status
	Err         error  // cause; never sent
}

// Prototype errors. Use them through WithDescription, which returns a copy.
var (
	// ErrInvalidRequest: a parameter is missing, repeated or malformed.
	ErrInvalidRequest = &OAuthError{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The request is missing a parameter or is otherwise malformed."}
	// ErrInvalidClient: client authentication failed. SMART Backend
	// Services sends every failed assertion check here. 400, not 401: the
	// client did not authenticate with the Authorization header, and a 401
	// would need a WWW-Authenticate challenge (RFC 6749 §5.2, RFC 7235).
	ErrInvalidClient = &OAuthError{Code: "invalid_client", Status: http.StatusBadRequest,
		Description: "Client authentication failed."}
	// ErrInvalidScope: a requested scope is malformed, unsupported or not
	// granted to the client.
	ErrInvalidScope = &OAuthError{Code: "invalid_scope", Status: http.StatusBadRequest,
		Description: "The requested scope is invalid or not allowed for this client."}
	// ErrUnsupportedGrantType: grant_type is not client_credentials.
	ErrUnsupportedGrantType = &OAuthError{Code: "unsupported_grant_type", Status: http.StatusBadRequest,
		Description: "Only the client_credentials grant type is supported."}
	// ErrUnauthorizedClient: the client may not use this grant type.
	ErrUnauthorizedClient = &OAuthError{Code: "unauthorized_client", Status: http.StatusBadRequest,
		Description: "The client is not authorized to use this grant type."}
	// ErrInvalidClientMetadata: RFC 7591 registration metadata is invalid.
	ErrInvalidClientMetadata = &OAuthError{Code: "invalid_client_metadata", Status: http.StatusBadRequest,
		Description: "The client metadata is invalid."}
	// ErrServerError: anything else; the cause is in Err, never in the
	// description.
	ErrServerError = &OAuthError{Code: "server_error", Status: http.StatusInternalServerError,
		Description: "The authorization server encountered an internal error."}
)

// Error returns the code, the description and the cause.
func (e *OAuthError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Description)
}

// Unwrap returns the cause.
func (e *OAuthError) Unwrap() error { return e.Err }

// Is reports whether target is an OAuthError with the same code, so
// errors.Is(err, ErrInvalidClient) matches every refined copy.
func (e *OAuthError) Is(target error) bool {
	t, ok := target.(*OAuthError)
	return ok && t.Code == e.Code
}

// WithDescription returns a copy with a formatted client-safe description.
func (e *OAuthError) WithDescription(format string, args ...any) *OAuthError {
	c := *e
	c.Description = fmt.Sprintf(format, args...)
	return &c
}

// WithWrap returns a copy that wraps cause.
func (e *OAuthError) WithWrap(cause error) *OAuthError {
	c := *e
	c.Err = cause
	return &c
}

// MarshalJSON returns the response body, {"error", "error_description"}.
// The cause is never included.
func (e *OAuthError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description})
}

// AsOAuthError returns the first OAuthError in err's chain, or
// ErrServerError wrapping err, so a handler always has a safe response. It
// returns nil for nil.
func AsOAuthError(err error) *OAuthError {
	var e *OAuthError
	if err == nil {
		return nil
	} else if errors.As(err, &e) {
		return e
	}
	return ErrServerError.WithWrap(err)
}
