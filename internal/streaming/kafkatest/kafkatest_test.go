package kafkatest

import (
	"context"
	"net"
	"os"
	"regexp"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func TestPing_TheTestBrokerAnswers(t *testing.T) {
	if err := Ping(context.Background(), Bootstrap(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestPing_AServerThatIsNotKafkaIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			_ = c.Close()
		}
	}()
	if err := Ping(context.Background(), l.Addr().String()); err == nil {
		t.Fatal("Ping of an HTTP server succeeded")
	}
}

func TestTopic_IsAValidKafkaNameUniquePerCall(t *testing.T) {
	a, b := Topic(t), Topic(t)
	valid := regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	if a == b || !valid.MatchString(a) {
		t.Errorf("Topic = %q, then %q; want two different valid topic names", a, b)
	}
}

func TestClusterID_NeverStartsWithADashTheStorageToolWouldReadAsAnOption(t *testing.T) {
	for range 2000 {
		if id := clusterID(); id[0] == '-' || len(id) != 22 {
			t.Fatalf("clusterID = %q", id)
		}
	}
}
