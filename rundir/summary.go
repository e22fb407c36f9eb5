package rundir

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// SummaryVersion is the version of summary.json this package writes.
// Version 1 is the first; files without a version field are version 1.
const SummaryVersion = 1

// Summary is the one-line result of a certification (summary.json):
// accuracies are fractions in [0, 1], radii in pixel units of Norm.
type Summary struct {
	Version int     `json:"version"`
	Arch    string  `json:"arch"`
	Norm    string  `json:"norm"` // of the radii: l2 or linf
	Images  int     `json:"images"`
	K       float64 `json:"k"` // the Lipschitz bound behind the radii, where one applies
	Clean   float64 `json:"clean"`
	// Radii and Certified are the certified accuracy at each radius.
	Radii     []float64 `json:"eps"`
	Certified []float64 `json:"certified"`
	// TrainClean is the clean accuracy on the real training images (0 when
	// certify was given none) and GeneralizationGap = TrainClean - Clean.
	TrainClean        float64 `json:"train_clean"`
	GeneralizationGap float64 `json:"generalization_gap"`
	// Proof says what stands behind the radii (which bounds, which
	// rounding allowance); empty in files written before it was recorded.
	Proof string `json:"proof,omitempty"`
}

// check reports the first inconsistency of s.
func (s *Summary) check() error {
	if s.Version > SummaryVersion {
		return fmt.Errorf("version %d: %w (this one reads up to %d)", s.Version, ErrVersion, SummaryVersion)
	}
	if len(s.Radii) != len(s.Certified) {
		return fmt.Errorf("%d radii and %d certified accuracies", len(s.Radii), len(s.Certified))
	}
	for _, v := range append([]float64{s.Clean, s.TrainClean, s.GeneralizationGap, s.K}, s.Certified...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("holds %v, want finite numbers", v)
		}
	}
	return nil
}

// WriteSummary writes s as dir/summary.json, atomically.
func WriteSummary(dir string, s Summary) error {
	s.Version = SummaryVersion
	if err := s.check(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, SummaryFile), err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, SummaryFile), append(data, '\n'))
}

// ReadSummary reads dir/summary.json and checks it.
func ReadSummary(dir string) (Summary, error) {
	path := filepath.Join(dir, SummaryFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return Summary{}, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version == 0 {
		s.Version = 1
	}
	if err := s.check(); err != nil {
		return Summary{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
