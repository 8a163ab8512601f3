package bulktest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir"
)

// KickoffStore is what BenchKickoff needs of a store: the resources a
// kick-off checks and the jobs it creates.
type KickoffStore struct {
	Jobs      bulk.JobStore
	Resources interface {
		bulk.ResourceSource
		bulk.ResourceSink
	}
	// Clock, if set, gives transactionTime as the deployment's does.
	Clock bulk.Clock
}

// BenchKickoff measures kick-offs naming fhir.MaxPatients `patient`
// values (36-character ids, as UUIDs) against st, which it first fills
// with those Patients and a Group of all of them (issue 12 item 4): at
// Patient level (a Get a value), at Group level (the Group's members read
// once, then a Get a member) and at Patient level under a contract of that
// Group (an IsGroupMember a value, then a Get), each with the store reads
// one at a time (as kick-off read them before) and Config.KickoffParallel
// (32) at once. It
// reports ms/kickoff, the store reads per kick-off (reads/kickoff) and, on
// unix, the CPU time of the process per kick-off (cpu-ms/kickoff), which
// on Lambda, where CPU follows memory, is the bound wall time cannot show
// here. The workflow is not started: StartExecution is one more request.
func BenchKickoff(b *testing.B, st KickoffStore) {
	ctx := context.Background()
	ids := fillPatients(b, st.Resources)
	src := &countingSource{ResourceSource: st.Resources}
	levels := []struct {
		name string
		req  bulk.ExportRequest
	}{
		{"Patient", bulk.ExportRequest{Level: bulk.LevelPatient}},
		{"Group", bulk.ExportRequest{Level: bulk.LevelGroup, GroupID: "bench-all"}},
		{"PatientContract", bulk.ExportRequest{Level: bulk.LevelPatient, Contract: &bulk.Contract{Groups: []string{"bench-all"}}}},
	}
	for _, lv := range levels {
		for _, parallel := range []int{1, export.DefaultConfig().KickoffParallel} {
			b.Run(fmt.Sprintf("%s/parallel=%d", lv.name, parallel), func(b *testing.B) {
				cfg := export.DefaultConfig()
				cfg.KickoffParallel = parallel
				svc := export.NewService(st.Jobs, src, nil, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				svc.Clock, svc.Workflow = st.Clock, idleWorkflow{}
				src.reads.Store(0)
				cpu := cpuTime()
				start := time.Now()
				for b.Loop() {
					req := lv.req
					req.Types, req.OutputFormat = []string{"Patient"}, "application/fhir+ndjson"
					req.Patients = ids
					req.RequestURL = "https://example.org/fhir/Patient/$export"
					if _, err := svc.Kickoff(ctx, "bench", req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/kickoff")
				b.ReportMetric(float64(src.reads.Load())/float64(b.N), "reads/kickoff")
				if c := cpuTime(); c > 0 {
					b.ReportMetric(float64((c-cpu).Milliseconds())/float64(b.N), "cpu-ms/kickoff")
				}
			})
		}
	}
}

// fillPatients stores fhir.MaxPatients Patients and the Group bench-all
// of all of them, and returns their ids in a shuffled order.
func fillPatients(b *testing.B, sink bulk.ResourceSink) []string {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 4))
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	ids := make([]string, fhir.MaxPatients)
	var batch []*bulk.Resource
	for i := range ids {
		id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint32()>>16, rng.Uint64()>>16)
		ids[i] = id
		batch = append(batch, &bulk.Resource{Type: "Patient", ID: id, LastUpdated: at, Patients: []string{id},
			Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"lastUpdated":%q}}`, id, at.Format(time.RFC3339Nano))})
		if len(batch) == 500 || i == len(ids)-1 {
			if err := sink.Put(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = nil
		}
	}
	members := append([]string(nil), ids...)
	group := &bulk.Resource{Type: "Group", ID: "bench-all", LastUpdated: at, Members: members,
		Body: fmt.Appendf(nil, `{"resourceType":"Group","id":"bench-all","meta":{"lastUpdated":%q}}`, at.Format(time.RFC3339Nano))}
	if err := sink.Put(ctx, []*bulk.Resource{group}); err != nil {
		b.Fatal(err)
	}
	return ids
}

// countingSource counts the reads a kick-off's checks make.
type countingSource struct {
	bulk.ResourceSource
	reads atomic.Int64
}

func (s *countingSource) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	s.reads.Add(1)
	return s.ResourceSource.Get(ctx, typ, id)
}

func (s *countingSource) IsGroupMember(ctx context.Context, group, patient string) (bool, error) {
	s.reads.Add(1)
	return s.ResourceSource.IsGroupMember(ctx, group, patient)
}

var _ bulk.Workflow = idleWorkflow{}

// idleWorkflow starts nothing.
type idleWorkflow struct{}

func (idleWorkflow) Start(context.Context, string) error           { return nil }
func (idleWorkflow) Stop(context.Context, string) error            { return nil }
func (idleWorkflow) Running(context.Context, string) (bool, error) { return false, nil }
