package scale

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Payer is the store issue 12 sizes: 50 M resources of 1 M patients.
var Payer = struct{ Resources, Patients float64 }{50e6, 1e6}

// Scenarios are the workloads docs/aws-scale.md reports, each with its
// target (zero: none).
func Scenarios() []struct {
	Scenario
	Target     time.Duration
	MaxDollars float64
} {
	type row = struct {
		Scenario
		Target     time.Duration
		MaxDollars float64
	}
	return []row{
		{Scenario{Name: "import 50 M resources", Kind: Import, Resources: Payer.Resources, Patients: Payer.Patients}, 2 * time.Hour, 0},
		{Scenario{Name: "system export, 50 M", Kind: SystemExport, Resources: Payer.Resources, Patients: Payer.Patients}, 15 * time.Minute, 3},
		{Scenario{Name: "Patient export, 1 M patients", Kind: PatientExport, Resources: Payer.Resources, Patients: Payer.Patients}, 0, 0},
		{Scenario{Name: "Group export, 1 M members", Kind: GroupExport, Resources: Payer.Resources, Patients: Payer.Patients, Members: 1e6}, 30 * time.Minute, 0},
		{Scenario{Name: "Group of 10 patients", Kind: GroupExport, Resources: Payer.Resources, Patients: Payer.Patients, Members: 10}, 30 * time.Second, 0.01},
	}
}

// Doc renders the tables of docs/aws-scale.md for each named stack.
func Doc(stacks []Named) string {
	var b strings.Builder
	f, l := stacks[0].Model.Figures, stacks[0].Model.Limits
	b.WriteString("### Inputs\n\n| input | value | from |\n|---|---|---|\n")
	for _, row := range [][3]string{
		{"read units per resource, system / Patient / Group export", fmt.Sprintf("%.3f / %.3f / %.3f", f.SystemReadUnits, f.PatientReadUnits, f.GroupReadUnits), "bench (strongly consistent)"},
		{"read units per Group member (membership, compartment index)", fmt.Sprintf("%.2f", f.GroupMemberReadUnits), "bench"},
		{"DynamoDB requests per member, in sequence", fmt.Sprintf("%.0f", f.GroupRequestsPerMember), "the code (compartment Query, batch read)"},
		{"import write / read units per resource", fmt.Sprintf("%.2f / %.2f", f.ImportWriteUnits, f.ImportReadUnits), "bench"},
		{"writes per resource to its type's hottest partition", fmt.Sprintf("%.0f, spread over %d shards", f.ImportHotWrites, stacks[0].Model.Stack.HotKeyShards), "the layout"},
		{"bytes per resource (NDJSON)", fmt.Sprintf("%.0f", f.BytesPerResource), "bench (synthea)"},
		{"resources per second, one ExportItem invocation", fmt.Sprintf("%.0f", f.ItemRate), "bench (no network latency)"},
		{"resources per second, one import invocation", fmt.Sprintf("%.0f", f.ImportRate), "bench (dynalite: a lower bound)"},
		{"largest type's share of the resources", fmt.Sprintf("%.0f %%", f.LargestTypeShare*100), "synthea (Observation)"},
		{"resources per patient", fmt.Sprintf("%.0f", f.ResourcesPerPatient), "50 M / 1 M"},
		{"partition throughput, read / write units per second", fmt.Sprintf("%.0f / %.0f", l.PartitionRead, l.PartitionWrite), "AWS"},
		{"latency per 1 MB page / per small request", fmt.Sprintf("%v / %v", l.PageLatency, l.RequestLatency), "AWS, typical"},
		{"fixed time per export (kick-off, Plan, Finalize, first poll)", l.Overhead.String(), "assumed"},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row[0], row[1], row[2])
	}
	b.WriteString("\n")
	for _, n := range stacks {
		fmt.Fprintf(&b, "### %s\n\n%s\n\n", n.Name, n.About)
		b.WriteString("| scenario | wall time | bound by | inside AWS | target |\n|---|---|---|---|---|\n")
		for _, sc := range Scenarios() {
			r := n.Model.Run(sc.Scenario)
			target := "—"
			if sc.Target > 0 {
				target = "< " + human(sc.Target)
				if sc.MaxDollars > 0 {
					target += fmt.Sprintf(", < $%g", sc.MaxDollars)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", sc.Name, human(r.Wall), r.Bound, money(r.Dollars), target)
		}
		b.WriteString("\n")
	}
	// The bill of the first stack, line by line.
	m := stacks[0].Model
	fmt.Fprintf(&b, "### The bill, %s\n\n", stacks[0].Name)
	b.WriteString("| scenario | " + strings.Join(billLines, " | ") + " |\n|---|" + strings.Repeat("---|", len(billLines)) + "\n")
	for _, sc := range Scenarios() {
		r := m.Run(sc.Scenario)
		cells := make([]string, len(billLines))
		for i, l := range billLines {
			cells[i] = "—"
			if v, ok := r.Lines[l]; ok {
				cells[i] = money(v)
			}
		}
		fmt.Fprintf(&b, "| %s | %s |\n", sc.Name, strings.Join(cells, " | "))
	}
	b.WriteString("\n### Every bound, " + stacks[0].Name + "\n\n| scenario | bounds |\n|---|---|\n")
	for _, sc := range Scenarios() {
		r := m.Run(sc.Scenario)
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Bounds)) {
			parts = append(parts, k+" "+human(r.Bounds[k]))
		}
		fmt.Fprintf(&b, "| %s | %s |\n", sc.Name, strings.Join(parts, "; "))
	}
	return b.String()
}

var billLines = []string{"DynamoDB reads", "DynamoDB writes", "Lambda", "Step Functions", "S3 requests", "S3 storage (day)", "SQS"}

// Named is a stack configuration with a name and what sets it apart.
type Named struct {
	Name, About string
	Model       Model
}

func human(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 2*time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0f min", d.Minutes())
	default:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
}

func money(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v < 0.0001:
		return "< $0.0001"
	case v < 0.1:
		return fmt.Sprintf("$%.4f", v)
	default:
		return fmt.Sprintf("$%.2f", v)
	}
}
