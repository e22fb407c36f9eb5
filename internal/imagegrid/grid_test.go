package imagegrid

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// solid returns an h x w image of c channels, every pixel px.
func solid(h, w int, px ...byte) []byte {
	return bytes.Repeat(px, h*w)
}

// at returns the colour of the decoded image at (x, y) as RGBA.
func at(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

func TestRenderPNG(t *testing.T) {
	const h, w, scale, cols = 5, 6, 4, 2 // not square, so a swapped H and W shows
	red, green, blue := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}
	pattern := make([]byte, 0, h*w*3) // a distinct colour per source pixel
	for y := range h {
		for x := range w {
			pattern = append(pattern, byte(40*x), byte(50*y), 7)
		}
	}
	tiles := []Tile{
		{Pixels: solid(h, w, 255, 0, 0), Caption: "a"},
		{Pixels: pattern, Caption: "bb"},
		{Pixels: solid(h, w, 0, 255, 0), Caption: "ccc", Border: blue},
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, tiles, h, w, 3, cols, scale); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("decode the PNG: %v", err)
	}

	// Cells are the scaled tile in a 2px ring, with a 2px gap and a 13px
	// caption under it, 4px apart; 2 columns, so 2 rows for 3 tiles.
	const cellW, cellH = w*scale + 4, h*scale + 4 + 2 + 13
	if got, want := img.Bounds(), image.Rect(0, 0, 4+2*(cellW+4), 4+2*(cellH+4)); got != want {
		t.Fatalf("image bounds %v, want %v", got, want)
	}
	origin := func(i int) (x0, y0 int) { // top left of tile i's pixels
		return 4 + (i%cols)*(cellW+4) + 2, 4 + (i/cols)*(cellH+4) + 2
	}
	check := func(what string, x, y int, want color.RGBA) {
		t.Helper()
		if got := at(img, x, y); got != want {
			t.Errorf("%s at (%d,%d) is %v, want %v", what, x, y, got, want)
		}
	}

	check("background", 0, 0, background)
	x0, y0 := origin(0)
	check("tile 0", x0, y0, red)
	check("tile 0", x0+w*scale-1, y0+h*scale-1, red)
	check("tile 0 without border", x0-1, y0-1, background)
	check("right of tile 0", x0+w*scale, y0, background)

	// Every source pixel of tile 1 is a scale x scale square of its colour.
	x0, y0 = origin(1)
	for y := range h {
		for x := range w {
			want := color.RGBA{byte(40 * x), byte(50 * y), 7, 255}
			check("tile 1", x0+x*scale, y0+y*scale, want)
			check("tile 1", x0+x*scale+scale-1, y0+y*scale+scale-1, want)
		}
	}

	x0, y0 = origin(2)
	check("tile 2", x0, y0, green)
	check("tile 2 border", x0-1, y0-1, blue)
	check("tile 2 border", x0+w*scale+1, y0+h*scale+1, blue)

	// Each caption puts white ink in the band under its tile.
	for i := range tiles {
		x0, y0 := origin(i)
		white := 0
		for y := y0 + h*scale + 2; y < y0+h*scale+2+2+13; y++ {
			for x := x0 - 2; x < x0-2+cellW; x++ {
				if at(img, x, y) == (color.RGBA{255, 255, 255, 255}) {
					white++
				}
			}
		}
		if white == 0 {
			t.Errorf("no caption drawn under tile %d", i)
		}
	}
}

func TestRenderChannels(t *testing.T) {
	tiles := []Tile{{Pixels: []byte{200}}}
	img, err := Render(tiles, 1, 1, 1, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.RGBAAt(4+2, 4+2), (color.RGBA{200, 200, 200, 255}); got != want {
		t.Errorf("grey pixel is %v, want %v", got, want)
	}

	// RGBA is composited over the background: opaque shows its colour,
	// transparent the background.
	tiles = []Tile{{Pixels: []byte{10, 20, 30, 255, 10, 20, 30, 0}}}
	img, err = Render(tiles, 1, 2, 4, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.RGBAAt(4+2, 4+2), (color.RGBA{10, 20, 30, 255}); got != want {
		t.Errorf("opaque pixel is %v, want %v", got, want)
	}
	if got := img.RGBAAt(4+2+1, 4+2); got != background {
		t.Errorf("transparent pixel is %v, want the background %v", got, background)
	}
}

func TestRenderWideCaption(t *testing.T) {
	// A caption wider than its tile widens every cell rather than being clipped.
	long := strings.Repeat("x", MaxCaption+10)
	img, err := Render([]Tile{{Pixels: []byte{0}, Caption: long}, {Pixels: []byte{0}}}, 1, 1, 1, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	cellW := MaxCaption * face.Advance
	if got, want := img.Rect.Dx(), 4+2*(cellW+4); got != want {
		t.Errorf("width %d, want %d: 2 cells (cols clamped to the tiles) of %d px", got, want, cellW)
	}
	if got := printable("é7\t#1"); got != "?7?#1" {
		t.Errorf("printable gave %q, want %q", got, "?7?#1")
	}
}

func TestRenderBadInputs(t *testing.T) {
	ok := []Tile{{Pixels: make([]byte, 2*3*3)}}
	for _, tc := range []struct {
		name                 string
		tiles                []Tile
		h, w, c, cols, scale int
		want                 string
	}{
		{"no tiles", nil, 2, 3, 3, 1, 1, "no tiles"},
		{"short pixels", []Tile{ok[0], {Pixels: make([]byte, 5)}}, 2, 3, 3, 1, 1, "tile 1 has 5 bytes, want 18"},
		{"size", ok, 0, 3, 3, 1, 1, "image size 0x3"},
		{"channels", ok, 3, 3, 2, 1, 1, "2 channels"},
		{"cols", ok, 2, 3, 3, 0, 1, "0 columns"},
		{"scale 0", ok, 2, 3, 3, 1, 0, "scale 0 outside 1..16"},
		{"scale 17", ok, 2, 3, 3, 1, 17, "scale 17 outside 1..16"},
		{"too big", []Tile{{Pixels: make([]byte, 4096*4096)}}, 4096, 4096, 1, 1, 16, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WritePNG(&buf, tc.tiles, tc.h, tc.w, tc.c, tc.cols, tc.scale)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if buf.Len() > 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

// TestSample writes a preview-like grid and checks it decodes; with
// IMAGEGRID_SAMPLE=/tmp/imagegrid-sample.png it is kept there for a person to
// look at.
func TestSample(t *testing.T) {
	path := os.Getenv("IMAGEGRID_SAMPLE")
	if path == "" {
		path = filepath.Join(t.TempDir(), "sample.png")
	}
	const side = 32
	var tiles []Tile
	for i := range 16 {
		px := make([]byte, 0, side*side*3)
		for y := range side {
			for x := range side {
				// Gradients with white diagonals: shows channel order and
				// that pixels stay crisp squares.
				r, g, b := byte(8*x), byte(8*y), byte(16*i)
				if x == y || x == side-1-y {
					r, g, b = 255, 255, 255
				}
				px = append(px, r, g, b)
			}
		}
		tile := Tile{Pixels: px, Caption: fmt.Sprintf("%d/%d #%d", i%10, i%4, 12345+i)}
		if i%2 == 1 {
			tile.Border = color.RGBA{0xe0, 0x80, 0x20, 0xff}
		}
		tiles = append(tiles, tile)
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, tiles, side, side, 3, 8, 4); err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(buf.Bytes())); err != nil || img.Bounds().Dx() == 0 {
		t.Fatalf("the sample grid does not decode: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
