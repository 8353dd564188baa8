package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// The server the tests share is execd's own (execd spark-server): its
// sessions must share Spark's class loader, so that a run's generated code
// is the code the runs before it compiled (see the server's driverScript).
// Spark's SparkConnectServer main class would report true here.
func TestServer_SessionsShareSparksClassLoader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 2 { // each a session of its own
		spark := sparktest.Session(ctx, t)
		for _, key := range []string{"spark.sql.artifact.isolation.enabled", "spark.sql.artifact.isolation.alwaysApplyClassloader"} {
			df, err := spark.Sql(ctx, "SET "+key)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := df.Collect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("session %d: SET %s gave %d rows, want 1", i+1, key, len(rows))
			}
			if v := rows[0].At(1); v != "false" {
				t.Errorf("session %d: %s is %v, want false", i+1, key, v)
			}
		}
	}
}
