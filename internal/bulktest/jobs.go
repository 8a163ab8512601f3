package bulktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// newJob returns an accepted job with every field set, so a store that drops
// a field fails the round trip.
func newJob(id string) *bulk.Job {
	return &bulk.Job{
		ID:       id,
		ClientID: "client-1",
		Status:   bulk.StatusAccepted,
		Request: bulk.ExportRequest{
			Level:        bulk.LevelGroup,
			GroupID:      "g1",
			Types:        []string{"Patient", "Observation"},
			Since:        t0,
			Until:        t0.Add(time.Hour),
			Patients:     []string{"p1"},
			OutputFormat: "application/fhir+ndjson",
			RequestURL:   "https://example.org/fhir/Group/g1/$export?_type=Patient,Observation",
		},
		TransactionTime: t0.Add(time.Hour),
		CreatedAt:       t0.Add(time.Hour),
		UpdatedAt:       t0.Add(time.Hour),
		ExpiresAt:       t0.Add(25 * time.Hour),
	}
}

// LargeRequestJob returns newJob(id) with a request the size of the
// largest kick-off: fhir.MaxPatients `patient` values of 64 characters
// (FHIR's longest id), every other one ignored with a message as a
// lenient kick-off under a Group contract keeps them
// (export.checkContract): 1.6 MB of JSON, past DynamoDB's 400 KB item
// limit even gzipped. seed varies the ids, so two such requests differ.
func LargeRequestJob(id string, seed uint64) *bulk.Job {
	j := newJob(id)
	rng := rand.New(rand.NewPCG(seed, 7))
	j.Request.Patients = make([]string, fhir.MaxPatients)
	for i := range j.Request.Patients {
		p := fmt.Sprintf("%05d-%016x%016x%016x%010x", i, rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()>>24)
		j.Request.Patients[i] = p
		if i%2 == 1 {
			j.Request.Ignored = append(j.Request.Ignored, "patient Patient/"+p+" is outside this client's contract: not a member of Group/g1. It was ignored (Prefer: handling=lenient).")
		}
	}
	j.Request.Lenient = true
	return j
}

func newPlan(items int) *bulk.Plan {
	p := &bulk.Plan{Types: []string{"Observation", "Patient"}, Range: bulk.Range{Since: t0, Until: t0.Add(time.Hour)}}
	for i := range items {
		p.Items = append(p.Items, bulk.Item{Index: i, Type: "Observation", Shards: []int{i, i + items}})
	}
	return p
}

// jobOpts compares jobs as stored: nil and empty lists are the same. Times
// compare with Equal, so a store may drop the monotonic clock and location.
var jobOpts = gocmp.Options{cmpopts.EquateEmpty()}

// RunJobStoreTests runs the bulk.JobStore contract against stores made by
// open, which must return a new, empty store for each call and arrange its
// cleanup with t.Cleanup.
// It is long because it is the contract: one t.Run per rule, each short.
func RunJobStoreTests(t *testing.T, open func(t *testing.T) bulk.JobStore) {
	ctx := context.Background()
	// create opens a store holding accepted jobs with the given ids.
	create := func(t *testing.T, ids ...string) bulk.JobStore {
		t.Helper()
		s := open(t)
		for _, id := range ids {
			if err := s.CreateJob(ctx, newJob(id)); err != nil {
				t.Fatalf("CreateJob(%s): %v", id, err)
			}
		}
		return s
	}

	t.Run("CreateGet", func(t *testing.T) {
		s := create(t, "j1")
		got, err := s.GetJob(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(newJob("j1"), got, jobOpts); diff != "" {
			t.Errorf("GetJob(j1) mismatch (-want +got):\n%s", diff)
		}
		// The caller's copy is its own.
		got.Status = bulk.StatusFailed
		got.Request.Types[0] = "x"
		if again, err := s.GetJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		} else if diff := gocmp.Diff(newJob("j1"), again, jobOpts); diff != "" {
			t.Errorf("GetJob(j1) after changing a returned job (-want +got):\n%s", diff)
		}
		dup := newJob("j1")
		dup.ClientID = "other"
		if err := s.CreateJob(ctx, dup); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("CreateJob(j1) again error = %v, want %s", err, bulk.ECONFLICT)
		}
		if got, err := s.GetJob(ctx, "j1"); err != nil || got.ClientID != "client-1" {
			t.Errorf("GetJob(j1) after a duplicate CreateJob = %+v, %v; want the first job", got, err)
		}
		if _, err := s.GetJob(ctx, "nope"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetJob(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("Transition", func(t *testing.T) {
		s := create(t, "j1")
		later := t0.Add(2 * time.Hour)
		got, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, func(j *bulk.Job) {
			j.UpdatedAt = later
		})
		if err != nil {
			t.Fatal(err)
		}
		want := newJob("j1")
		want.Status, want.UpdatedAt = bulk.StatusInProgress, later
		if diff := gocmp.Diff(want, got, jobOpts); diff != "" {
			t.Errorf("Transition result mismatch (-want +got):\n%s", diff)
		}
		checkJob(t, s, want)

		// Not in from: conflict, nothing changes, mutate is not applied.
		_, err = s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusFailed, func(j *bulk.Job) {
			j.Failure = "should not be stored"
		})
		if bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("Transition(j1, from accepted) of an in-progress job error = %v, want %s", err, bulk.ECONFLICT)
		}
		checkJob(t, s, want)

		// Staying in a non-terminal status is a transition too, with nil mutate.
		if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusInProgress, nil); err != nil {
			t.Errorf("Transition(j1, in-progress → in-progress): %v", err)
		}

		if _, err := s.Transition(ctx, "nope", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("Transition(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("TerminalIsFinal", func(t *testing.T) {
		for _, terminal := range []bulk.Status{bulk.StatusCompleted, bulk.StatusFailed, bulk.StatusCancelled} {
			s := create(t, "j1")
			if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, terminal, nil); err != nil {
				t.Fatalf("Transition(j1, accepted → %s): %v", terminal, err)
			}
			every := []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress, bulk.StatusCompleted, bulk.StatusFailed, bulk.StatusCancelled}
			for _, to := range every {
				_, err := s.Transition(ctx, "j1", every, to, func(j *bulk.Job) { j.Failure = "changed" })
				if bulk.ErrorCode(err) != bulk.ECONFLICT {
					t.Errorf("Transition(j1, %s → %s) error = %v, want %s", terminal, to, err, bulk.ECONFLICT)
				}
			}
			want := newJob("j1")
			want.Status = terminal
			checkJob(t, s, want)
			if _, err := s.SavePlan(ctx, "j1", newPlan(2)); bulk.ErrorCode(err) != bulk.ECONFLICT {
				t.Errorf("SavePlan on a %s job error = %v, want %s", terminal, err, bulk.ECONFLICT)
			}
			if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: 0, Done: true}); bulk.ErrorCode(err) != bulk.ECONFLICT {
				t.Errorf("SaveProgress on a %s job error = %v, want %s", terminal, err, bulk.ECONFLICT)
			}
		}
	})

	t.Run("TransitionMutateKeepsIdentity", func(t *testing.T) {
		s := create(t, "j1")
		got, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, func(j *bulk.Job) {
			j.ID, j.Status = "other", bulk.StatusCompleted
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "j1" || got.Status != bulk.StatusInProgress {
			t.Errorf("Transition whose mutate changed id and status = %s %s, want j1 in-progress", got.ID, got.Status)
		}
		checkJob(t, s, got)
	})

	t.Run("TransitionConcurrent", func(t *testing.T) {
		s := create(t, "j1")
		const n = 16
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []int
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Half try to complete, half to cancel: only one may win.
				to := bulk.StatusCompleted
				if i%2 == 1 {
					to = bulk.StatusCancelled
				}
				_, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, to, func(j *bulk.Job) {
					j.Failure = fmt.Sprint(i)
				})
				switch bulk.ErrorCode(err) {
				case "":
					mu.Lock()
					wins = append(wins, i)
					mu.Unlock()
				case bulk.ECONFLICT:
				default:
					t.Errorf("Transition: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d concurrent Transitions won (%v), want exactly 1", len(wins), wins)
		}
		got, err := s.GetJob(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(wins[0]); got.Failure != want || !got.Status.Terminal() {
			t.Errorf("after the race the job is %s with mutation %q, want terminal with %q", got.Status, got.Failure, want)
		}
	})

	t.Run("SavePlan", func(t *testing.T) {
		s := create(t, "j1")
		if _, err := s.GetPlan(ctx, "j1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetPlan(j1) before SavePlan error = %v, want %s", err, bulk.ENOTFOUND)
		}
		first := newPlan(3)
		got, err := s.SavePlan(ctx, "j1", first)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(first, got, jobOpts); diff != "" {
			t.Errorf("SavePlan result mismatch (-want +got):\n%s", diff)
		}
		// The first plan wins: a re-run planner gets the stored one back.
		got, err = s.SavePlan(ctx, "j1", newPlan(5))
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(first, got, jobOpts); diff != "" {
			t.Errorf("second SavePlan returned (-want first +got):\n%s", diff)
		}
		if got, err := s.GetPlan(ctx, "j1"); err != nil {
			t.Fatal(err)
		} else if diff := gocmp.Diff(first, got, jobOpts); diff != "" {
			t.Errorf("GetPlan mismatch (-want +got):\n%s", diff)
		}
		if j, err := s.GetJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		} else if j.ItemsTotal != 3 {
			t.Errorf("GetJob(j1).ItemsTotal = %d, want 3", j.ItemsTotal)
		}
		if _, err := s.SavePlan(ctx, "nope", newPlan(1)); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("SavePlan(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if _, err := s.GetPlan(ctx, "nope"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetPlan(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("SaveProgress", func(t *testing.T) {
		s := create(t, "j1")
		if _, err := s.SavePlan(ctx, "j1", newPlan(3)); err != nil {
			t.Fatal(err)
		}
		file := func(n int) bulk.OutputFile {
			return bulk.OutputFile{Kind: bulk.KindOutput, Type: "Observation", Key: fmt.Sprintf("j1/o.%d.ndjson", n), Count: int64(n), Bytes: int64(100 * n)}
		}
		saves := []*bulk.ItemProgress{
			{Index: 2, Cursor: "c1", Part: 1, Files: []bulk.OutputFile{file(1)}},
			{Index: 0, Done: true, Part: 1, Files: []bulk.OutputFile{file(2)}},
			{Index: 2, Cursor: "c2", Part: 2, Files: []bulk.OutputFile{file(1), file(3)}},
			{Index: 0, Done: true, Part: 1, Files: []bulk.OutputFile{file(2)}}, // a retry: counted once
			{Index: 2, Done: true, Part: 3, Files: []bulk.OutputFile{file(1), file(3), file(4)}},
		}
		wantDone := []int{0, 1, 1, 1, 2}
		for i, p := range saves {
			if err := s.SaveProgress(ctx, "j1", p); err != nil {
				t.Fatalf("SaveProgress(%+v): %v", p, err)
			}
			j, err := s.GetJob(ctx, "j1")
			if err != nil {
				t.Fatal(err)
			}
			if j.ItemsDone != wantDone[i] || j.ItemsTotal != 3 {
				t.Errorf("after save %d: ItemsDone, ItemsTotal = %d, %d; want %d, 3", i, j.ItemsDone, j.ItemsTotal, wantDone[i])
			}
		}
		got, err := s.Progress(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff([]*bulk.ItemProgress{saves[3], saves[4]}, got, jobOpts); diff != "" {
			t.Errorf("Progress(j1) mismatch (-want +got):\n%s", diff)
		}
		if err := s.SaveProgress(ctx, "nope", saves[0]); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("SaveProgress(nope) error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("ProgressIndexOrder", func(t *testing.T) {
		s := create(t, "j1", "j2")
		// Indexes past 255 and 65535 catch encodings that sort as text
		// or in too few bytes.
		indexes := []int{70000, 3, 256, 0, 10, 1}
		for _, i := range indexes {
			if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: i, Part: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveProgress(ctx, "j2", &bulk.ItemProgress{Index: 5}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Progress(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		var gotIdx []int
		for _, p := range got {
			gotIdx = append(gotIdx, p.Index)
		}
		if diff := gocmp.Diff([]int{0, 1, 3, 10, 256, 70000}, gotIdx); diff != "" {
			t.Errorf("Progress(j1) indexes mismatch (-want +got):\n%s", diff)
		}
		for _, i := range indexes {
			p, err := s.ItemProgress(ctx, "j1", i)
			if err != nil || p.Index != i || p.Part != 1 {
				t.Errorf("ItemProgress(j1, %d) = %+v, %v; want its checkpoint", i, p, err)
			}
		}
		for _, tc := range []struct {
			job   string
			index int
		}{{"j1", 2}, {"j2", 3}, {"nope", 0}} {
			if _, err := s.ItemProgress(ctx, tc.job, tc.index); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("ItemProgress(%s, %d) error = %v, want %s", tc.job, tc.index, err, bulk.ENOTFOUND)
			}
		}
	})

	t.Run("ListJobs", func(t *testing.T) {
		s := create(t, "j2", "j10", "j1", "a")
		var got []string
		if err := s.ListJobs(ctx, func(j *bulk.Job) error { got = append(got, j.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff([]string{"a", "j1", "j10", "j2"}, got); diff != "" {
			t.Errorf("ListJobs order mismatch (-want +got):\n%s", diff)
		}
		boom := errors.New("boom")
		n := 0
		if err := s.ListJobs(ctx, func(*bulk.Job) error { n++; return boom }); !errors.Is(err, boom) || n != 1 {
			t.Errorf("ListJobs with a failing visit = %v after %d visits, want %v after 1", err, n, boom)
		}
		if err := open(t).ListJobs(ctx, func(j *bulk.Job) error { return fmt.Errorf("visited %s", j.ID) }); err != nil {
			t.Errorf("ListJobs of an empty store: %v", err)
		}
	})

	t.Run("ActiveJobs", func(t *testing.T) {
		s := open(t)
		// Owners that prefix one another, and the empty one, catch an
		// index keyed by a bare concatenation or by a non-empty key only.
		owners := map[string]string{"a1": "client-1", "a2": "client-1", "b1": "client-10", "c1": "", "d1": "client-1"}
		want := map[string]int{"client-1": 0, "client-10": 0, "": 0, "nobody": 0}
		checkActive(t, s, want)
		for _, id := range []string{"a1", "a2", "b1", "c1", "d1"} {
			j := newJob(id)
			j.ClientID = owners[id]
			if err := s.CreateJob(ctx, j); err != nil {
				t.Fatalf("CreateJob(%s): %v", id, err)
			}
		}
		// A job stored already finished is not active.
		done := newJob("z1")
		done.Status = bulk.StatusCompleted
		if err := s.CreateJob(ctx, done); err != nil {
			t.Fatalf("CreateJob(z1, completed): %v", err)
		}
		want = map[string]int{"client-1": 3, "client-10": 1, "": 1, "nobody": 0}
		checkActive(t, s, want)

		// Running is still active; a plan or checkpoint changes nothing.
		if _, err := s.Transition(ctx, "a1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SavePlan(ctx, "a1", newPlan(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveProgress(ctx, "a1", &bulk.ItemProgress{Index: 0, Done: true}); err != nil {
			t.Fatal(err)
		}
		checkActive(t, s, want)

		// Each terminal status ends it, and a refused transition does not.
		for id, to := range map[string]bulk.Status{"a1": bulk.StatusCompleted, "a2": bulk.StatusFailed, "b1": bulk.StatusCancelled} {
			if _, err := s.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, to, nil); err != nil {
				t.Fatalf("Transition(%s → %s): %v", id, to, err)
			}
		}
		if _, err := s.Transition(ctx, "d1", []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("Transition(d1, from in-progress) of an accepted job error = %v, want %s", err, bulk.ECONFLICT)
		}
		want = map[string]int{"client-1": 1, "client-10": 0, "": 1, "nobody": 0}
		checkActive(t, s, want)

		// Deleting a running job ends it; deleting a finished one or an
		// unknown id changes nothing.
		for _, id := range []string{"c1", "a1", "z1", "never"} {
			if err := s.DeleteJob(ctx, id); err != nil {
				t.Fatalf("DeleteJob(%s): %v", id, err)
			}
		}
		want = map[string]int{"client-1": 1, "client-10": 0, "": 0, "nobody": 0}
		checkActive(t, s, want)

		// A cancelled job that is then deleted, as Cancel does it, and an
		// id used again.
		if _, err := s.Transition(ctx, "d1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusCancelled, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteJob(ctx, "d1"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateJob(ctx, newJob("a1")); err != nil {
			t.Fatalf("CreateJob(a1) after DeleteJob: %v", err)
		}
		want = map[string]int{"client-1": 1, "client-10": 0, "": 0, "nobody": 0}
		checkActive(t, s, want)
	})

	t.Run("CreateJobWithin", func(t *testing.T) {
		// 20 simultaneous kick-offs of one client with a quota of 4: the
		// count and the create are one step, so exactly 4 get in (R39).
		s := open(t)
		other, done := newJob("o1"), newJob("d1")
		other.ClientID, done.Status = "client-2", bulk.StatusCompleted
		for _, j := range []*bulk.Job{other, done} { // neither counts
			if err := s.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		const limit, n = 4, 20
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.CreateJobWithin(ctx, newJob(fmt.Sprintf("q%02d", i)), limit)
			}()
		}
		close(start)
		wg.Wait()
		var won []string
		for i, err := range errs {
			id := fmt.Sprintf("q%02d", i)
			switch bulk.ErrorCode(err) {
			case "":
				won = append(won, id)
			case bulk.ETOOMANYREQUESTS:
				if _, err := s.GetJob(ctx, id); bulk.ErrorCode(err) != bulk.ENOTFOUND {
					t.Errorf("GetJob(%s) refused by the quota: %v, want %s", id, err, bulk.ENOTFOUND)
				}
			default:
				t.Errorf("CreateJobWithin(%s, %d): %v", id, limit, err)
			}
		}
		if len(won) != limit {
			t.Fatalf("%d of %d simultaneous CreateJobWithin(limit %d) succeeded (%v), want exactly %d", len(won), n, limit, won, limit)
		}
		checkActive(t, s, map[string]int{"client-1": limit, "client-2": 1})
		within := func(id string, limit int, want string) {
			t.Helper()
			if err := s.CreateJobWithin(ctx, newJob(id), limit); bulk.ErrorCode(err) != want {
				t.Errorf("CreateJobWithin(%s, %d) error = %v, want %q", id, limit, err, want)
			}
		}
		within("x1", limit, bulk.ETOOMANYREQUESTS)
		// Running is still active; each way out frees one slot: a terminal
		// transition, deleting a running job, a cancel as Cancel does it.
		if _, err := s.Transition(ctx, won[0], []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil); err != nil {
			t.Fatal(err)
		}
		within("x1", limit, bulk.ETOOMANYREQUESTS)
		if _, err := s.Transition(ctx, won[0], []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, nil); err != nil {
			t.Fatal(err)
		}
		within("x1", limit, "")
		within("x2", limit, bulk.ETOOMANYREQUESTS)
		if err := s.DeleteJob(ctx, won[1]); err != nil {
			t.Fatal(err)
		}
		within("x2", limit, "")
		if _, err := s.Transition(ctx, won[2], []bulk.Status{bulk.StatusAccepted}, bulk.StatusCancelled, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteJob(ctx, won[2]); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteJob(ctx, won[0]); err != nil { // finished: frees nothing more
			t.Fatal(err)
		}
		within("x3", limit, "")
		within("x4", limit, bulk.ETOOMANYREQUESTS)
		// A duplicate id is a conflict and takes no slot; a job stored
		// finished, or no limit, is never refused; CreateJob's jobs count.
		within("x3", limit+1, bulk.ECONFLICT)
		within("x4", limit+1, "")
		within("x5", limit+1, bulk.ETOOMANYREQUESTS)
		finished := newJob("x6")
		finished.Status = bulk.StatusFailed
		if err := s.CreateJobWithin(ctx, finished, 1); err != nil {
			t.Errorf("CreateJobWithin(a failed job, 1): %v", err)
		}
		within("x7", 0, "")
		if err := s.CreateJob(ctx, newJob("x8")); err != nil {
			t.Fatal(err)
		}
		within("x9", limit+3, bulk.ETOOMANYREQUESTS)
		within("x9", limit+4, "")
		checkActive(t, s, map[string]int{"client-1": limit + 4, "client-2": 1})
		if err := s.CreateJobWithin(ctx, newJob("x9"), 0); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("CreateJobWithin(x9 again, no limit) error = %v, want %s", err, bulk.ECONFLICT)
		}
		var ids []string
		if err := s.ListJobs(ctx, func(j *bulk.Job) error { ids = append(ids, j.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff([]string{"d1", "o1", won[3], "x1", "x2", "x3", "x4", "x6", "x7", "x8", "x9"}, ids); diff != "" {
			t.Errorf("ListJobs ids mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("SaveProgressRacingCancel", func(t *testing.T) {
		// Items checkpoint while the job is cancelled: a checkpoint is
		// either in before the cancel returns or refused with ECONFLICT,
		// never written after it, not even by a call that had read the
		// job as running.
		s := create(t, "j1")
		if _, err := s.SavePlan(ctx, "j1", newPlan(2)); err != nil {
			t.Fatal(err)
		}
		const workers, perWorker, cancelAfter = 4, 100, 8
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			saved  = map[int]bool{} // index → whether its save succeeded
			oks    int
			ready  = make(chan struct{})
			closed bool
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perWorker {
					idx := w + k*workers
					err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: idx, Done: true, Part: 1})
					if code := bulk.ErrorCode(err); code != "" && code != bulk.ECONFLICT {
						t.Errorf("SaveProgress(j1, %d): %v", idx, err)
						return
					}
					mu.Lock()
					saved[idx] = err == nil
					if err == nil {
						if oks++; oks == cancelAfter && !closed {
							closed = true
							close(ready)
						}
					}
					mu.Unlock()
					if err != nil {
						return // refused once terminal: stop as an item does
					}
				}
			}()
		}
		var snap []*bulk.ItemProgress
		select {
		case <-ready:
			if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusCancelled, nil); err != nil {
				t.Fatal(err)
			}
			var err error
			if snap, err = s.Progress(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("no checkpoint saved within a minute")
		}
		wg.Wait()
		after, err := s.Progress(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(snap, after, jobOpts); diff != "" {
			t.Errorf("checkpoints written after the cancel returned (-at cancel +after):\n%s", diff)
		}
		stored := map[int]bool{}
		for _, p := range after {
			stored[p.Index] = true
		}
		for idx, ok := range saved {
			if ok != stored[idx] {
				t.Errorf("SaveProgress(j1, %d) succeeded = %v, but its checkpoint stored = %v", idx, ok, stored[idx])
			}
		}
		if j, err := s.GetJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		} else if j.ItemsDone != len(after) {
			t.Errorf("ItemsDone = %d, want %d, the done checkpoints", j.ItemsDone, len(after))
		}
		if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: 0, Done: true}); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("SaveProgress after the cancel error = %v, want %s", err, bulk.ECONFLICT)
		}
		if err := s.DeleteJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if ps, err := s.Progress(ctx, "j1"); err != nil || len(ps) != 0 {
			t.Errorf("Progress(j1) after the cancel and DeleteJob = %v, %v; want none", ps, err)
		}
		if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: 1}); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("SaveProgress after DeleteJob error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})

	t.Run("LargeRequest", func(t *testing.T) {
		// A kick-off of fhir.MaxPatients `patient` values: every reader of
		// the job gets its whole request back, whatever the store does
		// with it, through every write of the job (issue 12 item 4).
		s := create(t, "small")
		big := LargeRequestJob("big", 1)
		if err := s.CreateJobWithin(ctx, big, 2); err != nil {
			t.Fatalf("CreateJobWithin(a request of %d patients): %v", len(big.Request.Patients), err)
		}
		checkJob(t, s, big)
		dup := LargeRequestJob("big", 2)
		if err := s.CreateJob(ctx, dup); bulk.ErrorCode(err) != bulk.ECONFLICT {
			t.Errorf("CreateJob(big) again error = %v, want %s", err, bulk.ECONFLICT)
		}
		checkJob(t, s, big)
		// A write whose request is unchanged keeps it; one that changes
		// it stores the new one, large or small.
		want := *big
		want.Status, want.UpdatedAt = bulk.StatusInProgress, t0.Add(2*time.Hour)
		got, err := s.Transition(ctx, "big", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, func(j *bulk.Job) { j.UpdatedAt = want.UpdatedAt })
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(&want, got, jobOpts); diff != "" {
			t.Errorf("Transition(big) result mismatch (-want +got):\n%s", diff)
		}
		checkJob(t, s, &want)
		for _, req := range []bulk.ExportRequest{newJob("x").Request, LargeRequestJob("x", 3).Request, big.Request} {
			want.Request = req
			if _, err := s.Transition(ctx, "big", []bulk.Status{bulk.StatusInProgress}, bulk.StatusInProgress, func(j *bulk.Job) { j.Request = req }); err != nil {
				t.Fatalf("Transition(big) to a request of %d patients: %v", len(req.Patients), err)
			}
			checkJob(t, s, &want)
		}
		listed := map[string]*bulk.Job{}
		if err := s.ListJobs(ctx, func(j *bulk.Job) error { listed[j.ID] = j; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(listed) != 2 || listed["big"] == nil {
			t.Fatalf("ListJobs visited %d jobs, want small and big", len(listed))
		} else if diff := gocmp.Diff(want.Request, listed["big"].Request, jobOpts); diff != "" {
			t.Errorf("ListJobs: big's request mismatch (-want +got):\n%s", diff)
		}
		// Finishing moves the expiry (and any TTL with it).
		want.Status, want.ExpiresAt = bulk.StatusCompleted, t0.Add(49*time.Hour)
		if _, err := s.Transition(ctx, "big", []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, func(j *bulk.Job) { j.ExpiresAt = want.ExpiresAt }); err != nil {
			t.Fatal(err)
		}
		checkJob(t, s, &want)
		checkActive(t, s, map[string]int{"client-1": 1})
		if err := s.DeleteJob(ctx, "big"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJob(ctx, "big"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetJob(big) after DeleteJob error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if err := s.CreateJob(ctx, dup); err != nil {
			t.Fatalf("CreateJob(big) after DeleteJob: %v", err)
		}
		checkJob(t, s, dup)
	})

	t.Run("DeleteJob", func(t *testing.T) {
		s := create(t, "j1", "j2")
		for _, id := range []string{"j1", "j2"} {
			if _, err := s.SavePlan(ctx, id, newPlan(2)); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveProgress(ctx, id, &bulk.ItemProgress{Index: 1, Done: true}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJob(ctx, "j1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetJob(j1) after DeleteJob error = %v, want %s", err, bulk.ENOTFOUND)
		}
		if _, err := s.GetPlan(ctx, "j1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetPlan(j1) after DeleteJob error = %v, want %s", err, bulk.ENOTFOUND)
		}
		// A deleted job has no checkpoints (Finalize reads them first).
		if ps, err := s.Progress(ctx, "j1"); err != nil || len(ps) != 0 {
			t.Errorf("Progress(j1) after DeleteJob = %v, %v; want none", ps, err)
		}
		if err := s.DeleteJob(ctx, "j1"); err != nil {
			t.Errorf("DeleteJob(j1) again: %v", err)
		}
		if err := s.DeleteJob(ctx, "never"); err != nil {
			t.Errorf("DeleteJob(never): %v", err)
		}
		// The other job keeps everything.
		if ps, err := s.Progress(ctx, "j2"); err != nil || len(ps) != 1 {
			t.Errorf("Progress(j2) = %v, %v; want its one checkpoint", ps, err)
		}
		if _, err := s.GetPlan(ctx, "j2"); err != nil {
			t.Errorf("GetPlan(j2): %v", err)
		}
		// The id can be used again, starting clean.
		if err := s.CreateJob(ctx, newJob("j1")); err != nil {
			t.Fatalf("CreateJob(j1) after DeleteJob: %v", err)
		}
		if _, err := s.GetPlan(ctx, "j1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
			t.Errorf("GetPlan(j1) of the new job error = %v, want %s", err, bulk.ENOTFOUND)
		}
	})
}

// activeLag bounds how long a store's ActiveJobs may lag its writes: a
// DynamoDB global secondary index is eventually consistent.
const activeLag = 5 * time.Second

// checkActive checks ActiveJobs for each client of want, retrying until
// activeLag has passed.
func checkActive(t *testing.T, s bulk.JobStore, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(activeLag)
	for {
		got := map[string]int{}
		var err error
		for client := range want {
			if got[client], err = s.ActiveJobs(context.Background(), client); err != nil {
				t.Fatalf("ActiveJobs(%q): %v", client, err)
			}
		}
		diff := gocmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("ActiveJobs by client mismatch (-want +got):\n%s", diff)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkJob(t *testing.T, s bulk.JobStore, want *bulk.Job) {
	t.Helper()
	got, err := s.GetJob(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", want.ID, err)
	}
	if diff := gocmp.Diff(want, got, jobOpts); diff != "" {
		t.Errorf("GetJob(%s) mismatch (-want +got):\n%s", want.ID, diff)
	}
}
