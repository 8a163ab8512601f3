package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/tranchehq/tranche/internal/importer"
)

// The time seams of the import progress: how often a plain progress line
// is printed when stderr is not a terminal, and the clock it goes by.
var (
	importProgressEvery = 10 * time.Second
	importNow           = time.Now
)

// importProgress shows how far an import has got against its total: a bar
// with bytes, rate and time left on a terminal, else a plain line every
// importProgressEvery, so that CI logs show an import is moving.
type importProgress struct {
	w           io.Writer
	tty         bool
	bar         *progressbar.ProgressBar
	total       int64 // the bar's
	now         func() time.Time
	every       time.Duration
	start, last time.Time
}

func newImportProgress(w io.Writer) *importProgress {
	p := &importProgress{w: w, tty: isTerminal(w), now: importNow, every: importProgressEvery}
	p.start = p.now()
	p.last = p.start
	return p
}

// update takes a Progress report, on the importer's goroutine.
func (p *importProgress) update(pr importer.Progress) {
	if p.tty {
		if p.bar == nil {
			p.total = pr.TotalBytes
			p.bar = newBytesBar(p.w, "importing", p.total)
		}
		p.bar.Describe("importing: " + resourcesText(pr))
		// Short of the end until finish: a bar at its end is done, and
		// would not show the resources stored after the last byte read.
		n := pr.BytesRead
		if p.total > 0 {
			n = min(n, p.total-1)
		}
		_ = p.bar.Set64(n)
		return
	}
	t := p.now()
	if t.Sub(p.last) < p.every {
		return
	}
	p.last = t
	fmt.Fprintln(p.w, progressLine(pr, t.Sub(p.start)))
}

// finish ends the bar, if any.
func (p *importProgress) finish() {
	if p.bar != nil {
		if p.total > 0 {
			_ = p.bar.Set64(p.total)
		}
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// progressLine is the plain progress line: bytes against the total, files,
// resources, rate and time left (from the rate so far).
func progressLine(pr importer.Progress, elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString("importing: ")
	b.WriteString(formatBytes(pr.BytesRead))
	if pr.TotalBytes > 0 {
		fmt.Fprintf(&b, " of %s (%d%%)", formatBytes(pr.TotalBytes), min(100, pr.BytesRead*100/pr.TotalBytes))
	}
	if pr.TotalFiles > 0 {
		fmt.Fprintf(&b, ", file %d of %d", min(pr.Files+1, pr.TotalFiles), pr.TotalFiles)
	}
	b.WriteString(", " + resourcesText(pr))
	if secs := elapsed.Seconds(); secs > 0 && pr.BytesRead > 0 {
		rate := float64(pr.BytesRead) / secs
		fmt.Fprintf(&b, ", %s/s", formatBytes(int64(rate)))
		if left := pr.TotalBytes - pr.BytesRead; pr.TotalBytes > 0 && left > 0 {
			fmt.Fprintf(&b, ", about %s left", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return b.String()
}

func resourcesText(pr importer.Progress) string {
	if pr.TotalResources > 0 {
		return fmt.Sprintf("%d of %d resources", pr.Resources, pr.TotalResources)
	}
	return fmt.Sprintf("%d resources", pr.Resources)
}

// newBytesBar returns a bar of bytes against total (a spinner when the
// total is not known), with the rate and the time left.
func newBytesBar(w io.Writer, what string, total int64) *progressbar.ProgressBar {
	if total <= 0 {
		total = -1
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSpinnerType(14),
	)
}
