package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Formats that OpenSource understands.
var Formats = []string{"cifar10", "cifar100", "npz", "idx"}

// OpenSource opens the input files of one dataset. format is one of Formats,
// or "" to recognise it from the file names. paths are files, or one
// directory as unpacked from the dataset's archive (cifar-10-batches-bin,
// cifar-100-binary, a folder of IDX files), from which split ("train" or
// "test") picks the files. classes is the number of classes of an npz
// source (the released CIFAR-10 generated sets: 10).
func OpenSource(format string, paths []string, split string, classes int) (Source, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input files")
	}
	for _, p := range paths {
		var pe *fs.PathError
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe) {
			return nil, fmt.Errorf("%s does not exist: %w", p, pe.Err) // before the format is guessed from the name
		} else if err != nil {
			return nil, err
		}
	}
	if len(paths) == 1 {
		if st, err := os.Stat(paths[0]); err == nil && st.IsDir() {
			var err error
			if format, paths, err = splitFiles(paths[0], format, split); err != nil {
				return nil, err
			}
		}
	}
	if format == "" {
		format = detect(paths)
		if format == "" {
			return nil, fmt.Errorf("cannot tell the format of %s from its name: pass --format (one of %s)", strings.Join(paths, ", "), strings.Join(Formats, ", "))
		}
	}
	switch format {
	case "cifar10":
		return OpenCIFAR10(paths...)
	case "cifar100":
		return OpenCIFAR100(paths...)
	case "npz":
		if len(paths) != 1 {
			return nil, fmt.Errorf("npz: one file per dataset, got %d", len(paths))
		}
		if classes <= 0 {
			classes = 10
		}
		return OpenNPZ(paths[0], classes)
	case "idx":
		images, labels, err := idxPair(paths)
		if err != nil {
			return nil, err
		}
		return OpenIDX(images, labels)
	}
	return nil, fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
}

func detect(paths []string) string {
	base := filepath.Base(paths[0])
	switch {
	case strings.HasSuffix(base, ".npz"):
		return "npz"
	case strings.HasPrefix(base, "data_batch_") || base == "test_batch.bin":
		return "cifar10"
	case base == "train.bin" || base == "test.bin":
		return "cifar100"
	case strings.Contains(base, "-idx"):
		return "idx"
	}
	return ""
}

// splitFiles picks a split's files from an unpacked dataset directory.
func splitFiles(dir, format, split string) (string, []string, error) {
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	join := func(names ...string) []string {
		for i, n := range names {
			names[i] = filepath.Join(dir, n)
		}
		return names
	}
	if split != "train" && split != "test" {
		return "", nil, fmt.Errorf("%s: split %q: a directory input needs --split train or test", dir, split)
	}
	switch {
	case (format == "" || format == "cifar10") && exists("data_batch_1.bin"):
		if split == "test" {
			return "cifar10", join("test_batch.bin"), nil
		}
		return "cifar10", join("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"), nil
	case (format == "" || format == "cifar100") && exists("train.bin"):
		return "cifar100", join(split + ".bin"), nil
	case format == "" || format == "idx":
		prefix := map[string]string{"train": "train", "test": "t10k"}[split]
		for _, ext := range []string{".gz", ""} {
			img, lbl := prefix+"-images-idx3-ubyte"+ext, prefix+"-labels-idx1-ubyte"+ext
			if exists(img) && exists(lbl) {
				return "idx", join(img, lbl), nil
			}
		}
	}
	return "", nil, fmt.Errorf("%s: no %s files of a known dataset layout (CIFAR-10 data_batch_*.bin, CIFAR-100 train.bin/test.bin, IDX *-images-idx3-ubyte[.gz])", dir, split)
}

// idxPair tells the images file from the labels file.
func idxPair(paths []string) (images, labels string, err error) {
	if len(paths) != 2 {
		return "", "", fmt.Errorf("idx: want an images file and a labels file, got %d files", len(paths))
	}
	images, labels = paths[0], paths[1]
	if strings.Contains(filepath.Base(images), "idx1") || strings.Contains(filepath.Base(labels), "idx3") {
		images, labels = labels, images
	}
	return images, labels, nil
}
