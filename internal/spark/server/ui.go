package server

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"
)

// UIConf turns the driver's web UI on at port, on loopback only, for a
// server's Config.Conf. Spark moves to the next port when port is taken, so
// the address the UI ended up on comes from UI, not from port.
func UIConf(port int) map[string]string {
	return map[string]string{
		"spark.ui.enabled":             "true",
		"spark.ui.port":                strconv.Itoa(port),
		"spark.ui.showConsoleProgress": "false",
	}
}

// FreeUIConf is UIConf on a free loopback port (not Spark's default 4040,
// which another server may hold).
func FreeUIConf() (map[string]string, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return UIConf(port), nil
}

// uiBound is Spark's log line naming the port its UI took.
var uiBound = regexp.MustCompile(`Successfully started service 'SparkUI' on port (\d+)`)

// UI returns the http:// address of the server's web UI, as its log names
// it, waiting up to 30 s for the line; an error when the UI is off or did
// not start. After a restart it is the newest run's address.
func (s *Server) UI(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		b, _ := os.ReadFile(s.logPath)
		if m := uiBound.FindAllSubmatch(b, -1); len(m) > 0 {
			return "http://127.0.0.1:" + string(m[len(m)-1][1]), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the Spark UI's port is not in %s (is spark.ui.enabled on?)", s.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
