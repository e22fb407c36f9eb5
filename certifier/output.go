package certifier

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// CSVHeader is the header row of the per-image CSV.
var CSVHeader = []string{"index", "label", "prediction", "radius", "correct", "certified", "ibp"}

// csvColumnsV1 is the header's length before the ibp column, which ReadCSV
// still accepts.
const csvColumnsV1 = 6

// CSVWriter streams per-image results as CSV rows
// index,label,prediction,radius,correct,certified,ibp. Radius and ibp
// ([Result.IBP]) are written in the shortest form that parses back to the
// same float64 ("+Inf" for an infinite radius); correct and certified are 0
// or 1, certified at the writer's ε ([Result.Certified]). Rows are buffered;
// call Flush at the end.
type CSVWriter struct {
	w   *csv.Writer
	eps float64
	row []string
	buf []byte
}

// NewCSVWriter writes the header to w and returns a writer for the rows.
func NewCSVWriter(w io.Writer, eps float64) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w), eps: eps, row: make([]string, len(CSVHeader))}
	if err := cw.w.Write(CSVHeader); err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	return cw, nil
}

// Write writes the row of one image.
func (cw *CSVWriter) Write(index int, r Result) error {
	cw.row[0] = strconv.Itoa(index)
	cw.row[1] = strconv.Itoa(r.Label)
	cw.row[2] = strconv.Itoa(r.Prediction)
	cw.buf = strconv.AppendFloat(cw.buf[:0], r.Radius, 'g', -1, 64)
	cw.row[3] = string(cw.buf)
	cw.row[4] = bit(r.Correct())
	cw.row[5] = bit(r.Certified(cw.eps))
	cw.buf = strconv.AppendFloat(cw.buf[:0], r.IBP, 'g', -1, 64)
	cw.row[6] = string(cw.buf)
	if err := cw.w.Write(cw.row); err != nil {
		return fmt.Errorf("csv row %d: %w", index, err)
	}
	return nil
}

// Flush writes buffered rows to the underlying writer.
func (cw *CSVWriter) Flush() error {
	cw.w.Flush()
	if err := cw.w.Error(); err != nil {
		return fmt.Errorf("csv flush: %w", err)
	}
	return nil
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// WriteCSV writes all results, indexed from 0, with the header.
func WriteCSV(w io.Writer, results []Result, eps float64) error {
	cw, err := NewCSVWriter(w, eps)
	if err != nil {
		return err
	}
	for i, r := range results {
		if err := cw.Write(i, r); err != nil {
			return err
		}
	}
	return cw.Flush()
}

// ReadCSV reads a file written by [WriteCSV] (or by its earlier version
// without the ibp column). Rows must be indexed 0, 1, … in order; the
// correct and certified columns are derived data and are checked against
// label, prediction and radius only for correct (certified depends on an ε
// the file does not record).
func ReadCSV(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 0 // every row as long as the header
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read csv header: %w", err)
	}
	if len(head) != len(CSVHeader) && len(head) != csvColumnsV1 {
		return nil, fmt.Errorf("read csv header: %d columns, want %d: %w", len(head), len(CSVHeader), ErrShape)
	}
	for i, h := range CSVHeader[:len(head)] {
		if head[i] != h {
			return nil, fmt.Errorf("read csv header: column %d is %q, want %q: %w", i, head[i], h, ErrShape)
		}
	}
	var out []Result
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		var v [3]int
		for k := range v {
			if v[k], err = strconv.Atoi(rec[k]); err != nil {
				return nil, fmt.Errorf("read csv line %d: %s: %w", line, CSVHeader[k], err)
			}
		}
		if v[0] != len(out) {
			return nil, fmt.Errorf("read csv line %d: index %d, want %d: %w", line, v[0], len(out), ErrShape)
		}
		rad, err := strconv.ParseFloat(rec[3], 64)
		if err != nil {
			return nil, fmt.Errorf("read csv line %d: radius: %w", line, err)
		}
		res := Result{Label: v[1], Prediction: v[2], Radius: rad}
		if len(rec) > csvColumnsV1 {
			if res.IBP, err = strconv.ParseFloat(rec[6], 64); err != nil {
				return nil, fmt.Errorf("read csv line %d: ibp: %w", line, err)
			}
		}
		if rec[4] != bit(res.Correct()) {
			return nil, fmt.Errorf("read csv line %d: correct = %s disagrees with label %d and prediction %d: %w",
				line, rec[4], res.Label, res.Prediction, ErrShape)
		}
		out = append(out, res)
	}
}
