package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
)

// The admin API: plain HTTP and JSON over the socket.
//
//	GET    /v1/info          Info
//	GET    /v1/clients       []bulk.Client
//	POST   /v1/clients       AddClientRequest → bulk.Client
//	DELETE /v1/clients/{id}  204
//	GET    /v1/stats         Stats
//	POST   /v1/import        ImportRequest → NDJSON of ImportEvent, the report last
//
// Errors are ErrorBody with the status of the code (statuses).

// ErrorBody is an error response, and an import's error.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ImportEvent is one line of an import's response: progress while it
// runs, then the report, with the error if the import failed.
type ImportEvent struct {
	Progress *importer.Progress `json:"progress,omitempty"`
	Report   *importer.Report   `json:"report,omitempty"`
	Error    *ErrorBody         `json:"error,omitempty"`
}

// statuses maps error codes to HTTP statuses: the admin API's one table.
var statuses = map[string]int{
	bulk.EINVALID:         http.StatusBadRequest,
	bulk.EUNSUPPORTED:     http.StatusBadRequest,
	bulk.ENOTFOUND:        http.StatusNotFound,
	bulk.ECONFLICT:        http.StatusConflict,
	bulk.EMETHOD:          http.StatusMethodNotAllowed,
	bulk.ETOOMANYREQUESTS: http.StatusTooManyRequests,
	bulk.ETRANSIENT:       http.StatusServiceUnavailable,
	bulk.ENOSPACE:         http.StatusInsufficientStorage,
}

// internalMessage replaces an internal error's text, which stays in the
// server's log.
const internalMessage = "Internal error: the server's log has the cause."

// maxBody bounds request bodies: client metadata and path lists are small.
const maxBody = 1 << 20

// Handler serves s. Internal errors are logged with logger and answered
// without their text.
func Handler(s *Service, logger *slog.Logger) http.Handler {
	h := &handler{s: s, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", h.info)
	mux.HandleFunc("GET /v1/clients", h.listClients)
	mux.HandleFunc("POST /v1/clients", h.addClient)
	mux.HandleFunc("DELETE /v1/clients/{id}", h.removeClient)
	mux.HandleFunc("GET /v1/stats", h.stats)
	mux.HandleFunc("POST /v1/import", h.importFiles)
	return mux
}

type handler struct {
	s      *Service
	logger *slog.Logger
}

func (h *handler) info(w http.ResponseWriter, r *http.Request) {
	var info Info
	if h.s.Info != nil {
		info = *h.s.Info
	}
	writeJSON(w, http.StatusOK, info)
}

func (h *handler) listClients(w http.ResponseWriter, r *http.Request) {
	cs, err := h.s.ListClients(r.Context())
	if err != nil {
		h.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (h *handler) addClient(w http.ResponseWriter, r *http.Request) {
	var req AddClientRequest
	if !h.decode(w, r, &req) {
		return
	}
	c, err := h.s.AddClient(r.Context(), req)
	if err != nil {
		h.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (h *handler) removeClient(w http.ResponseWriter, r *http.Request) {
	if err := h.s.RemoveClient(r.Context(), r.PathValue("id")); err != nil {
		h.error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	st, err := h.s.Stats(r.Context())
	if err != nil {
		h.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// importFiles streams the import's progress as it runs: the status is sent
// before the import starts, so its outcome is the last line's.
func (h *handler) importFiles(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if !h.decode(w, r, &req) {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(ev ImportEvent) {
		// A client gone cancels r.Context(), which stops the import.
		if enc.Encode(ev) == nil {
			_ = rc.Flush()
		}
	}
	rep, err := h.s.Import(r.Context(), req, func(p importer.Progress) { send(ImportEvent{Progress: &p}) })
	last := ImportEvent{Report: &rep}
	if err != nil {
		last.Error = h.body(r, err)
	}
	send(last)
}

func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		h.error(w, r, bulk.Wrapf(err, bulk.EINVALID, "The request body is not valid JSON for %s.", r.URL.Path))
		return false
	}
	return true
}

func (h *handler) error(w http.ResponseWriter, r *http.Request, err error) {
	b := h.body(r, err)
	status, ok := statuses[b.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, b)
}

// body is err as sent: an internal error's text is only logged.
func (h *handler) body(r *http.Request, err error) *ErrorBody {
	if r.Context().Err() != nil {
		return &ErrorBody{Code: bulk.ETRANSIENT, Message: "The request was cancelled: the server is stopping, or the command was interrupted."}
	}
	code := bulk.ErrorCode(err)
	if _, ok := statuses[code]; !ok {
		h.logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		return &ErrorBody{Code: bulk.EINTERNAL, Message: internalMessage}
	}
	return &ErrorBody{Code: code, Message: bulk.ErrorMessage(err)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
