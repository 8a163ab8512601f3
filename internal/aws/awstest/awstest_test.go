package awstest

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDynamoDBFailsClosedInCI: with CI=true, a DynamoDB endpoint that
// nothing listens on fails the suite, naming the endpoint; without CI the
// suite skips, loudly. The check runs in a child test process so that it
// sees a fresh environment.
func TestDynamoDBFailsClosedInCI(t *testing.T) {
	if os.Getenv("AWSTEST_CHILD") == "1" {
		DynamoDB(t)
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		ci     string
		fails  bool
		output string
	}{
		{"true", true, "CI=true and a test dependency is missing"},
		{"", false, "SKIP"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDynamoDBFailsClosedInCI$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "AWSTEST_CHILD=1", "CI="+tc.ci, EndpointEnv+"="+closed)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fails || !strings.Contains(string(out), tc.output) || !strings.Contains(string(out), closed) {
			t.Errorf("CI=%q, %s=%s (closed): err %v, output:\n%s\nwant failed=%v with %q and the endpoint named", tc.ci, EndpointEnv, closed, err, out, tc.fails, tc.output)
		}
	}
}
