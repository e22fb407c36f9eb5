// Package importer turns a PyTorch state dict of one of the paper's
// architectures, trained with the authors' own code and saved with np.savez
// under the authors' parameter names, into a certmix trainer (and so a
// checkpoint), so that models trained elsewhere are certified and reported
// exactly as certmix's own.
//
// It knows the authors' models:
//
//   - GloroNet's LiResNet (klasleino/gloro, hu23 snapshot): stem.0.*,
//     backbone.{2i}.*, neck.0.*, neck.3.*, head.*, init_layer;
//   - l_inf-dist Net's MLPModel (zbh2047/L_inf-dist-net-v2) and SortNet's
//     SortMLPModel (zbh2047/SortNet): fc_dist.{l}.weight,
//     fc_dist.{l}.mean_shift.running_mean, the last layer's bias, scalar;
//   - LOT's LipResNet and LipConvNet (AI-secure/Layerwise-Orthogonal-Training):
//     layer{s}.in_block/hidden_block.{j}/out_block (or .block) with
//     layer{s}.res_lamda_logit, or layer{s}.{i}; last_layer.
//
// Detect finds the architecture and its sizes from the keys and shapes;
// Import checks every key against the model those sizes build (the first
// one that does not fit is named in the error, with what was expected) and
// loads it. MLPModel and SortMLPModel have the same parameters, so a
// SortNet must be named (Options.Arch). What a state dict does not hold, the
// input normalisation and the image size, comes from Options, whose zero
// values take each architecture's authors' values (Defaults); both are stored
// in the checkpoint's configuration. The conformance tests load the authors'
// reference files in testdata/ through this package.
package importer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"certmix/internal/npy"
	"certmix/shards"
	"certmix/trainer"
	"certmix/trainer/models"
	"certmix/trainer/nn"
)

// ErrStateDict is wrapped by every refusal of a state dict: an unknown
// architecture, or a key that is missing, unexpected or of another shape.
var ErrStateDict = errors.New("state dict does not fit")

// Options says what the state dict does not: which architecture to assume
// (empty: detect), where its keys are and how the model's inputs are
// normalised and sized. Zero values take the architecture's defaults.
type Options struct {
	Arch      string    // trainer.ArchGloro, ArchLinfDist, ArchSortNet or ArchLOT; "" detects
	Prefix    string    // prefix of the state's keys, e.g. "state/" or "module."
	Mean      []float64 // per channel, in [0,1] pixel units; nil: Defaults
	Std       float64   // one for every channel; 0: Defaults
	ImageSize int       // the side of the dataset's square images; 0: Defaults (or the l_inf models' weights)
	KeepProb  float64   // SortNet's q (0: 0.85, the authors' CIFAR-10 8/255 model)
	TopK      int       // SortNet's truncation K (0: 10)
	Batch     int       // the largest batch the model is built for (0: 256)
}

// Found is what a state dict holds: the architecture, the authors' class it
// was saved from and its sizes.
type Found struct {
	Arch     string // trainer.Arch*
	Class    string // the authors' class: LiResNet, MLPModel, SortMLPModel, LipResNet, LipConvNet
	Depth    int    // LiResNet blocks, MLP layers, LOT's 5 x blocks
	Width    int    // LiResNet and MLP width, LOT's init_channels
	Classes  int
	Channels int // where the weights tell it (not MLPModel's: see Import)
	Inputs   int // the l_inf models' values per image
	LLN      bool
	Scalar   bool
}

func (f Found) String() string {
	s := fmt.Sprintf("%s (%s) depth %d, width %d, %d classes", f.Class, f.Arch, f.Depth, f.Width, f.Classes)
	if f.Channels > 0 {
		s += fmt.Sprintf(", %d channels", f.Channels)
	}
	if f.Inputs > 0 {
		s += fmt.Sprintf(", %d inputs", f.Inputs)
	}
	if f.LLN {
		s += ", LLN"
	}
	return s
}

// Imported is what Import made of a state dict: what it found and what the
// options (or their defaults) added.
type Imported struct {
	Found
	Norm      Normalization
	ImageSize int // the dataset's image side the checkpoint is for
}

func (im Imported) String() string {
	return fmt.Sprintf("%s; %dx%d images, mean %v, std %v", im.Found, im.ImageSize, im.ImageSize, im.Norm.Mean, im.Norm.Std)
}

// Normalization is an input normalisation (x - mean_c)/std in pixel units.
type Normalization struct {
	Mean []float64
	Std  float64
}

// Defaults is the input normalisation each architecture's authors train
// with, for a model of channels channels, and the image size their CIFAR-10
// models take:
//   - LiResNet subtracts 0.5 inside the model (std 1), any channel count;
//   - l_inf-dist Net and SortNet (dataset.py of both repositories): CIFAR-10's
//     channel means with the single std 0.2009; for one channel
//     Fashion-MNIST's 0.2860 and 0.3520;
//   - LOT (utils.py, applied by the data loader; the model itself
//     normalises nothing): CIFAR-10's means with std 0.2507.
func Defaults(arch string, channels int) (Normalization, error) {
	cifar := []float64{0.4914, 0.4822, 0.4465}
	switch {
	case arch == trainer.ArchGloro:
		m := make([]float64, channels)
		for i := range m {
			m[i] = 0.5
		}
		return Normalization{m, 1}, nil
	case (arch == trainer.ArchLinfDist || arch == trainer.ArchSortNet) && channels == 3:
		return Normalization{cifar, 0.2009}, nil
	case (arch == trainer.ArchLinfDist || arch == trainer.ArchSortNet) && channels == 1:
		return Normalization{[]float64{0.2860}, 0.3520}, nil
	case arch == trainer.ArchLOT && channels == 3:
		return Normalization{cifar, 0.2507}, nil
	}
	return Normalization{}, fmt.Errorf("%s: no default normalisation for %d channels: pass the mean and std", arch, channels)
}

// state is a state dict under a prefix.
type state struct {
	arrays map[string]*npy.Array
	prefix string
}

func (s state) get(name string) (*npy.Array, bool) {
	a, ok := s.arrays[s.prefix+name]
	return a, ok
}

// keys lists the state's names under the prefix, without it, sorted.
func (s state) keys() []string {
	var ks []string
	for k := range s.arrays {
		if strings.HasPrefix(k, s.prefix) {
			ks = append(ks, strings.TrimPrefix(k, s.prefix))
		}
	}
	sort.Strings(ks)
	return ks
}

// shapeOf returns the shape of name, or an error naming it.
func (s state) shapeOf(name string, dims int, why string) ([]int, error) {
	a, ok := s.get(name)
	if !ok {
		return nil, fmt.Errorf("no %s%s (%s): %w", s.prefix, name, why, ErrStateDict)
	}
	if len(a.Shape) != dims {
		return nil, fmt.Errorf("%s%s has shape %v, want %d dimensions (%s): %w", s.prefix, name, a.Shape, dims, why, ErrStateDict)
	}
	return a.Shape, nil
}

// Detect finds the architecture of a state dict and its sizes from the keys
// under prefix; arch, when not empty, says which one it must be. An
// l_inf-dist state is reported as MLPModel unless arch is
// trainer.ArchSortNet: the two classes have the same parameters.
func Detect(arrays map[string]*npy.Array, prefix, arch string) (Found, error) {
	s := state{arrays, prefix}
	if arch == "" {
		switch _, gl := s.get("stem.0.weight"); {
		case gl:
			arch = trainer.ArchGloro
		default:
			if _, ok := s.get("fc_dist.0.weight"); ok {
				arch = trainer.ArchLinfDist
			} else if _, ok := s.get("last_layer.weight"); ok {
				arch = trainer.ArchLOT
			}
		}
	}
	switch arch {
	case trainer.ArchGloro:
		return detectGloro(s)
	case trainer.ArchLinfDist, trainer.ArchSortNet:
		return detectDist(s, arch)
	case trainer.ArchLOT:
		return detectLOT(s)
	case "":
		first := "nothing"
		if ks := s.keys(); len(ks) > 0 {
			first = prefix + ks[0]
		}
		return Found{}, fmt.Errorf("unknown state dict under prefix %q: its first key is %s, and none of stem.0.weight (LiResNet), fc_dist.0.weight (MLPModel, SortMLPModel) or last_layer.weight (LipResNet, LipConvNet) is there: %w",
			prefix, first, ErrStateDict)
	}
	return Found{}, fmt.Errorf("architecture %q: want %s, %s, %s or %s", arch, trainer.ArchGloro, trainer.ArchLinfDist, trainer.ArchSortNet, trainer.ArchLOT)
}

func detectGloro(s state) (Found, error) {
	stem, err := s.shapeOf("stem.0.weight", 4, "LiResNet's stem convolution, width x channels x 5 x 5")
	if err != nil {
		return Found{}, err
	}
	head, err := s.shapeOf("head.weight", 2, "LiResNet's head, classes x 512")
	if err != nil {
		return Found{}, err
	}
	depth := 0
	for _, k := range s.keys() {
		if strings.HasPrefix(k, "backbone.") && strings.HasSuffix(k, ".affine") {
			depth++
		}
	}
	return Found{Arch: trainer.ArchGloro, Class: "LiResNet", Depth: depth, Width: stem[0], Channels: stem[1], Classes: head[0]}, nil
}

func detectDist(s state, arch string) (Found, error) {
	first, err := s.shapeOf("fc_dist.0.weight", 2, "the first l_inf-dist layer, width x inputs")
	if err != nil {
		return Found{}, err
	}
	depth := 0
	for {
		if _, ok := s.get(fmt.Sprintf("fc_dist.%d.weight", depth)); !ok {
			break
		}
		depth++
	}
	last, err := s.shapeOf(fmt.Sprintf("fc_dist.%d.weight", depth-1), 2, "the last layer, classes x width")
	if err != nil {
		return Found{}, err
	}
	_, scalar := s.get("scalar")
	class := "MLPModel"
	if arch == trainer.ArchSortNet {
		class = "SortMLPModel"
	}
	return Found{Arch: arch, Class: class, Depth: depth, Width: first[0], Inputs: first[1], Classes: last[0], Scalar: scalar}, nil
}

func detectLOT(s state) (Found, error) {
	f := Found{Arch: trainer.ArchLOT}
	switch {
	case has(s, "layer1.block.conv.weight"):
		w, _ := s.shapeOf("layer1.block.conv.weight", 4, "")
		f.Class, f.Depth, f.Width, f.Channels = "LipResNet", 5, w[0]/2, w[1]/4
	case has(s, "layer1.in_block.conv.weight"):
		w, err := s.shapeOf("layer1.in_block.conv.weight", 4, "LipResNet's first convolution, init_channels x channels x 3 x 3")
		if err != nil {
			return Found{}, err
		}
		hidden := 0
		for has(s, fmt.Sprintf("layer1.hidden_block.%d.conv.weight", hidden)) {
			hidden++
		}
		f.Class, f.Depth, f.Width, f.Channels = "LipResNet", 5*(hidden+2), w[0], w[1]
	case has(s, "layer1.0.conv.weight"):
		w, err := s.shapeOf("layer1.0.conv.weight", 4, "LipConvNet's first convolution")
		if err != nil {
			return Found{}, err
		}
		blocks := 0
		for has(s, fmt.Sprintf("layer1.%d.conv.weight", blocks)) {
			blocks++
		}
		f.Class, f.Depth, f.Width, f.Channels = "LipConvNet", 5*blocks, w[0], w[1]
		if blocks == 1 {
			f.Width, f.Channels = w[0]/2, w[1]/4
		}
	default:
		return Found{}, fmt.Errorf("no %slayer1.in_block.conv.weight, layer1.block.conv.weight (LipResNet) or layer1.0.conv.weight (LipConvNet): %w", s.prefix, ErrStateDict)
	}
	last, ok := s.get("last_layer.weight")
	if !ok {
		return Found{}, fmt.Errorf("no %slast_layer.weight (the last layer, classes x features [x 1 x 1]): %w", s.prefix, ErrStateDict)
	}
	if len(last.Shape) != 2 && len(last.Shape) != 4 {
		return Found{}, fmt.Errorf("%slast_layer.weight has shape %v, want classes x features (LLN) or classes x features x 1 x 1 (LOT): %w", s.prefix, last.Shape, ErrStateDict)
	}
	f.Classes, f.LLN = last.Shape[0], len(last.Shape) == 2
	return f, nil
}

func has(s state, name string) bool { _, ok := s.get(name); return ok }

// Import builds the trainer of the state dict arrays: it detects (or takes
// from o.Arch) the architecture, builds that model with the normalisation
// and image size of o, checks every key and shape of the state against the
// model (the first that does not fit is refused by name, with the shape
// expected; a key the model has no use for is refused too) and loads the
// values, rounded to float32.
func Import(arrays map[string]*npy.Array, o Options) (*trainer.Trainer, Imported, error) {
	tr, f, err := build(arrays, o)
	if err != nil {
		return nil, Imported{Found: f}, err
	}
	im := Imported{Found: f, ImageSize: tr.Cfg.ImageSize}
	switch {
	case tr.Cfg.Dist != nil && (f.Arch == trainer.ArchLinfDist || f.Arch == trainer.ArchSortNet):
		im.Norm = Normalization{tr.Cfg.Dist.Mean, tr.Cfg.Dist.Std}
	case tr.Cfg.LOT != nil && f.Arch == trainer.ArchLOT:
		im.Norm = Normalization{tr.Cfg.LOT.Mean, tr.Cfg.LOT.Std}
	default:
		im.Norm, _ = Defaults(f.Arch, f.Channels)
	}
	return tr, im, nil
}

// build is Import without the report.
func build(arrays map[string]*npy.Array, o Options) (*trainer.Trainer, Found, error) {
	f, err := Detect(arrays, o.Prefix, o.Arch)
	if err != nil {
		return nil, f, err
	}
	s := state{arrays, o.Prefix}
	cfg, err := configure(s, &f, o)
	if err != nil {
		return nil, f, err
	}
	tr, err := trainer.New(cfg)
	if err != nil {
		return nil, f, err
	}
	want := map[string][]int{} // every key the model reads, with its shape
	var order []string
	expect := func(name string, shape ...int) {
		want[name] = shape
		order = append(order, name)
	}
	for _, p := range tr.Model.Params() {
		expect(p.Name, p.Shape...)
	}
	switch f.Arch {
	case trainer.ArchGloro:
		g := tr.Model.(*trainer.GloroModel).Net
		side, w := models.InputSide, f.Width
		expect("stem.0.init_x", 1, f.Channels, side, side)
		for i := range f.Depth {
			expect(fmt.Sprintf("backbone.%d.identity", 2*i), w, w, 3, 3)
			expect(fmt.Sprintf("backbone.%d.init_x", 2*i), 1, w, side/2, side/2)
		}
		expect("init_layer", 1, f.Depth*w, side/2, side/2)
		expect("neck.0.init_x", 1, w, side/2, side/2)
		expect("neck.3.init_x", 1, g.FC.Weight.Shape[1])
	case trainer.ArchLinfDist, trainer.ArchSortNet:
		for l := range f.Depth - 1 {
			expect(fmt.Sprintf("fc_dist.%d.mean_shift.running_mean", l), f.Width)
		}
	case trainer.ArchLOT:
		if f.Class == "LipResNet" {
			for st := range 5 {
				expect(fmt.Sprintf("layer%d.res_lamda_logit", st+1), 1)
			}
		}
	}
	for _, name := range order {
		a, ok := s.get(name)
		if !ok {
			return nil, f, fmt.Errorf("%s: no %s%s (want shape %v): %w", f.Class, o.Prefix, name, want[name], ErrStateDict)
		}
		if !slices.Equal(a.Shape, want[name]) {
			return nil, f, fmt.Errorf("%s: %s%s has shape %v, want %v: %w", f.Class, o.Prefix, name, a.Shape, want[name], ErrStateDict)
		}
		for _, v := range a.Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, f, fmt.Errorf("%s: %s%s holds %v, want finite values: %w", f.Class, o.Prefix, name, v, ErrStateDict)
			}
		}
	}
	for _, k := range s.keys() {
		if _, ok := want[k]; !ok {
			return nil, f, fmt.Errorf("%s: %s%s is not a parameter or buffer of %s: %w", f.Class, o.Prefix, k, f, ErrStateDict)
		}
	}
	for _, p := range tr.Model.Params() {
		a, _ := s.get(p.Name)
		for i, v := range a.Data {
			p.W[i] = float32(v)
		}
	}
	switch m := tr.Model.(type) {
	case *trainer.GloroModel:
		for i := range f.Depth {
			name := fmt.Sprintf("backbone.%d.identity", 2*i)
			a, _ := s.get(name)
			for j, v := range a.Data {
				if id := b2f(j%9 == 4 && j/9%(f.Width+1) == 0); v != id {
					return nil, f, fmt.Errorf("%s: %s%s[%d] is %v, want %v (LinearRes's fixed identity kernel): %w", f.Class, o.Prefix, name, j, v, id, ErrStateDict)
				}
			}
		}
		if err := m.Net.Import(arrays, o.Prefix); err != nil {
			return nil, f, fmt.Errorf("%w: %w", err, ErrStateDict)
		}
	case *trainer.LinfDistModel:
		setBuffers(s, m.Buffers())
	case *trainer.SortNetModel:
		setBuffers(s, m.Buffers())
	}
	return tr, f, nil
}

// b2f is 1 for true, 0 for false.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// setBuffers loads the buffers named as in the state (already checked).
func setBuffers(s state, bs []nn.Buffer) {
	for _, b := range bs {
		a, _ := s.get(b.Name)
		for i, v := range a.Data {
			b.Data[i] = float32(v)
		}
	}
}

// configure makes the trainer configuration of a found state: the
// architecture's preset, its sizes, the normalisation and image size of o
// (or their defaults), and LOT's residual mix from the state.
func configure(s state, f *Found, o Options) (trainer.Config, error) {
	batch := o.Batch
	if batch == 0 {
		batch = 256
	}
	var cfg trainer.Config
	switch f.Arch {
	case trainer.ArchGloro:
		cfg, _ = trainer.Preset("gloro-xs")
	case trainer.ArchLinfDist:
		cfg, _ = trainer.Preset("linfdist")
	case trainer.ArchSortNet:
		cfg, _ = trainer.Preset("sortnet")
	case trainer.ArchLOT:
		cfg, _ = trainer.Preset("lot-s")
	}
	if f.Arch == trainer.ArchLinfDist || f.Arch == trainer.ArchSortNet {
		// The weights tell the values per image, C x S x S; the channels
		// come from the mean when given, else from the image size when
		// given, else 3 if that makes a square, else 1.
		ch := len(o.Mean)
		switch {
		case ch > 0:
		case o.ImageSize > 0 && f.Inputs%(o.ImageSize*o.ImageSize) == 0:
			ch = f.Inputs / (o.ImageSize * o.ImageSize)
		case o.ImageSize > 0:
			ch = 3
		default:
			ch = 1
			if _, ok := isqrt(f.Inputs / 3); ok && f.Inputs%3 == 0 {
				ch = 3
			}
		}
		side, ok := isqrt(f.Inputs / ch)
		if !ok || f.Inputs%ch != 0 || (o.ImageSize != 0 && side != o.ImageSize) {
			want := "channels x size x size"
			if o.ImageSize != 0 {
				want = fmt.Sprintf("%d x %d x %d = %d", ch, o.ImageSize, o.ImageSize, ch*o.ImageSize*o.ImageSize)
			}
			return cfg, fmt.Errorf("%s: %sfc_dist.0.weight has %d inputs, want %s: %w", f.Class, s.prefix, f.Inputs, want, ErrStateDict)
		}
		f.Channels, o.ImageSize = ch, side
	}
	if o.ImageSize == 0 {
		o.ImageSize = models.InputSide
	}
	norm, err := Defaults(f.Arch, f.Channels)
	if len(o.Mean) > 0 {
		norm.Mean, err = o.Mean, nil
	}
	if o.Std != 0 {
		norm.Std = o.Std
	}
	if err != nil {
		return cfg, err
	}
	if len(norm.Mean) != f.Channels {
		return cfg, fmt.Errorf("%s: %d means for a model of %d channels", f.Class, len(norm.Mean), f.Channels)
	}
	if !(norm.Std > 0) || math.IsInf(norm.Std, 0) {
		return cfg, fmt.Errorf("%s: std %v, want a positive number", f.Class, norm.Std)
	}
	cfg.Depth, cfg.Width, cfg.Classes, cfg.Channels, cfg.Batch, cfg.ImageSize = f.Depth, f.Width, f.Classes, f.Channels, batch, o.ImageSize
	switch f.Arch {
	case trainer.ArchGloro:
		for c, v := range norm.Mean {
			if v != 0.5 || norm.Std != 1 {
				return cfg, fmt.Errorf("LiResNet: mean %v (channel %d), std %v: the authors' LiResNet subtracts 0.5 inside the model and nothing else, want mean 0.5 and std 1", v, c, norm.Std)
			}
		}
	case trainer.ArchLinfDist, trainer.ArchSortNet:
		d := *cfg.Dist
		d.Mean, d.Std, d.Scalar = norm.Mean, norm.Std, f.Scalar
		if f.Arch == trainer.ArchSortNet {
			d.KeepProb, d.TopK = 0.85, 10
			if o.KeepProb != 0 {
				d.KeepProb = o.KeepProb
			}
			if o.TopK != 0 {
				d.TopK = o.TopK
			}
		}
		cfg.Dist = &d
	case trainer.ArchLOT:
		lc := *cfg.LOT
		lc.Mean, lc.Std, lc.Residual, lc.LLN = norm.Mean, norm.Std, f.Class == "LipResNet", f.LLN
		if lc.Residual {
			for st := range 5 {
				name := fmt.Sprintf("layer%d.res_lamda_logit", st+1)
				a, ok := s.get(name)
				if !ok || len(a.Data) != 1 {
					return cfg, fmt.Errorf("%s: no %s%s of shape [1] (the stage's residual mix): %w", f.Class, s.prefix, name, ErrStateDict)
				}
				lc.ResLamdaLogit = append(lc.ResLamdaLogit, float32(a.Data[0]))
			}
		}
		cfg.LOT = &lc
	}
	return cfg, nil
}

// isqrt returns the integer square root of n and whether n is a square.
func isqrt(n int) (int, bool) {
	r := int(math.Sqrt(float64(n)) + 0.5)
	return r, n > 0 && r*r == n
}

// ImportFile imports the state dict saved with np.savez in path and writes
// the checkpoint out (a safetensors file, in one atomic write).
func ImportFile(ctx context.Context, path, out string, o Options) (Imported, error) {
	arrays, err := npy.LoadNPZ(path)
	if err != nil {
		return Imported{}, err
	}
	tr, f, err := Import(arrays, o)
	if err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	dir, name := filepath.Split(out)
	dir = filepath.Clean(dir + ".")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	store, err := shards.NewLocal(dir)
	if err != nil {
		return f, err
	}
	return f, tr.Save(ctx, store, name, []byte("null"))
}

// ParseFloats parses a comma-separated list of numbers, as the --mean flag
// gives it ("" is nil).
func ParseFloats(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: want comma-separated numbers: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}
