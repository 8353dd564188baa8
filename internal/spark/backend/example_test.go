package backend_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// copyDir copies the example project so its data and outputs stay out of
// the tree.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "data" || rel == "output" {
			return filepath.SkipDir
		}
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type dayTotal struct {
	orders  map[string]bool
	revenue float64
	noPrice int // orders without a price
}

// expectedDaily computes daily_totals from the CSV the way the example's
// SQL says: January orders with a positive quantity; a missing price counts
// the order but adds no revenue.
func expectedDaily(t *testing.T, path string) map[string]*dayTotal {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dayTotal{}
	for _, r := range recs[1:] {
		id, day, qty, price := r[0], r[4], r[5], r[6]
		q, _ := strconv.Atoi(qty)
		if day < "2025-01-01" || day > "2025-01-31" || q <= 0 {
			continue
		}
		d := out[day]
		if d == nil {
			d = &dayTotal{orders: map[string]bool{}}
			out[day] = d
		}
		d.orders[id] = true
		if p, err := strconv.ParseFloat(price, 64); err == nil {
			d.revenue += float64(q) * p
		} else {
			d.noPrice++
		}
	}
	return out
}

func TestExample_DailySalesOutputsMatchTheInputRowByRow(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(t.TempDir(), "sales")
	copyDir(t, filepath.Join("..", "..", "..", "examples", "sales"), dir)
	if out, err := exec.Command(py, filepath.Join(dir, "generate_data.py")).CombinedOutput(); err != nil {
		t.Fatalf("generating data: %v\n%s", err, out)
	}
	r := runPipeline(t, dir, "daily_sales")
	if r.State != run.Succeeded {
		t.Fatalf("run %s: %s %+v", r.State, r.Message, r.Nodes)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spark := sparktest.Session(ctx, t)
	daily := filepath.Join(dir, "output", "base", "gold", "sales", "daily_totals")
	df, err := spark.Sql(ctx, fmt.Sprintf("SELECT CAST(order_date AS STRING), orders, revenue FROM delta.`%s` ORDER BY order_date", daily))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedDaily(t, filepath.Join(dir, "data", "orders.csv"))
	if len(rows) != len(want) || len(rows) != 31 {
		t.Fatalf("daily_totals has %d rows, the input gives %d (31 days)", len(rows), len(want))
	}
	for _, row := range rows {
		day := fmt.Sprint(row.At(0))
		w := want[day]
		if w == nil {
			t.Errorf("unexpected day %s", day)
			continue
		}
		orders, _ := row.At(1).(int64)
		revenue, _ := row.At(2).(float64)
		if int(orders) != len(w.orders) || math.Abs(revenue-w.revenue) > 1e-6 {
			t.Errorf("%s: orders %d revenue %.2f, want %d and %.2f", day, orders, revenue, len(w.orders), w.revenue)
		}
	}

	df, err = spark.Sql(ctx, fmt.Sprintf("SELECT stores, products FROM parquet.`%s`", filepath.Join(dir, "output", "base", "gold", "sales", "summary")))
	if err != nil {
		t.Fatal(err)
	}
	rows, err = df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || fmt.Sprint(rows[0].At(0), rows[0].At(1)) != "5 12" {
		t.Errorf("summary rows %v, want one row with 5 stores and 12 products", rows)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "output", "base", "silver", "sales", "orders_clean", "order_date=2025-01-*"))
	if len(parts) != 31 {
		t.Errorf("orders_clean has %d order_date partitions, want 31", len(parts))
	}
	// clean_orders counts its expectations: the January orders without a
	// price break has_price (kept), none breaks sane_quantity.
	var cleaned, noPrice int64
	for _, d := range want {
		cleaned += int64(len(d.orders))
		noPrice += int64(d.noPrice)
	}
	x := nodeOf(r, "clean_orders").Attempts[0].Expectations
	t.Logf("clean_orders: %d orders, %d without a price; expectations %+v", cleaned, noPrice, x)
	if len(x) != 4 || x[0].Name != "has_price" || x[0].Failed != noPrice || x[0].Passed != cleaned-noPrice || noPrice == 0 ||
		x[1].Name != "sane_quantity" || x[1].Failed != 0 || !x[2].OK || !x[3].OK {
		t.Errorf("clean_orders' expectations = %+v; want has_price to count the %d orders without a price of %d", x, noPrice, cleaned)
	}
}
