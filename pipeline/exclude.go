package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ReadExcludeIDs reads a file of source ids to leave out of a build: one
// decimal id per line, blank lines and lines starting with '#' ignored (the
// format shardtool audit writes). It returns the ids sorted, without
// duplicates. A line that is not an id is an error naming the file and line.
func ReadExcludeIDs(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exclude ids: %w", err)
	}
	defer f.Close()
	var ids []int64
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("exclude ids %s line %d: %q is not an id (want one non-negative integer per line): %w", path, line, s, ErrFormat)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exclude ids %s: %w", path, err)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// checkExclude refuses an exclusion list that is not sorted and unique or
// names an id the source does not have: a list made for another source.
func checkExclude(ids []int64, rows int64) error {
	for i, id := range ids {
		if i > 0 && id <= ids[i-1] {
			return fmt.Errorf("exclude ids: not sorted and unique at position %d (%d after %d)", i, id, ids[i-1])
		}
		if id < 0 || id >= rows {
			return fmt.Errorf("exclude ids: id %d outside the source's ids 0..%d (a list made for another source?)", id, rows-1)
		}
	}
	return nil
}
