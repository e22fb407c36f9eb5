package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrChanged marks a cell directory that holds a run of other settings than
// the sweep file now gives the cell of that name: its results would not be
// the cell's, so the sweep refuses rather than skip or resume it.
var ErrChanged = errors.New("cell settings changed")

// Plan is a sweep expanded into cells: what plan.json in a sweep directory
// holds, and what certmix sweep status and certmix report read.
type Plan struct {
	Name string `json:"name"`
	// Generated lists the amounts of generated data in column order.
	Generated []string  `json:"generated"`
	Cells     []Cell    `json:"cells"`
	Slurm     Resources `json:"slurm"`
	// Families maps a cell's name to its grid's family, for the cells
	// whose grid names one (see Grid.Family).
	Families map[string]string `json:"families,omitempty"`
}

// NewPlan expands f (relative paths from dir, see [Expand]).
func NewPlan(f *File, dir string) (*Plan, error) {
	cells, err := Expand(f, dir)
	if err != nil {
		return nil, err
	}
	p := &Plan{Name: f.Name, Cells: cells, Slurm: f.Slurm}
	for _, c := range cells {
		if c.Family != "" {
			if p.Families == nil {
				p.Families = map[string]string{}
			}
			p.Families[c.Name] = c.Family
		}
	}
	for _, g := range f.Data.Generated {
		p.Generated = append(p.Generated, g.Name)
	}
	return p, nil
}

// CellDir is the directory of the cell named name in the sweep directory dir.
func CellDir(dir, name string) string { return filepath.Join(dir, "cells", name) }

// Prepare makes dir a sweep directory for p: sweep.yaml (the expanded
// sweep file as given), plan.json, and cells/NAME/cell.json for every cell.
// A directory of earlier runs is taken as it is, except that a cell whose
// cell.json differs from the plan's is refused with [ErrChanged].
func Prepare(dir string, p *Plan, source []byte) error {
	for _, c := range p.Cells {
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return fmt.Errorf("cell %s: %w", c.Name, err)
		}
		data = append(data, '\n')
		path := filepath.Join(CellDir(dir, c.Name), "cell.json")
		old, err := os.ReadFile(path)
		switch {
		case err == nil && !bytes.Equal(old, data):
			return fmt.Errorf("%s: %w: it was run with other settings than the sweep file now gives it; run into a new directory or remove that cell", path, ErrChanged)
		case err == nil:
			continue
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("prepare sweep: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("prepare sweep: %w", err)
		}
		if err := writeAtomic(path, data); err != nil {
			return fmt.Errorf("prepare sweep: %w", err)
		}
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("prepare sweep: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "plan.json"), append(data, '\n')); err != nil {
		return fmt.Errorf("prepare sweep: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "sweep.yaml"), source); err != nil {
		return fmt.Errorf("prepare sweep: %w", err)
	}
	return nil
}

// ReadPlan reads dir/plan.json.
func ReadPlan(dir string) (*Plan, error) {
	data, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a sweep directory (no plan.json): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s/plan.json: %w", dir, err)
	}
	for i := range p.Cells {
		p.Cells[i].Family = p.Families[p.Cells[i].Name]
	}
	return &p, nil
}

// ReadCell reads the cell.json of the cell named name.
func ReadCell(dir, name string) (Cell, error) {
	var c Cell
	data, err := os.ReadFile(filepath.Join(CellDir(dir, name), "cell.json"))
	if err != nil {
		return c, fmt.Errorf("read cell: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("cell %s: %w", name, err)
	}
	if c.Name != name {
		return c, fmt.Errorf("cell %s: cell.json names %q", name, c.Name)
	}
	return c, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory, synced and renamed: readers see the old file or the new one.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes it 0600
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
