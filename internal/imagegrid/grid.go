// Package imagegrid renders small uint8 images as a captioned grid, for a
// person to look at: dataset previews, and samples tagged by their source.
//
// Tiles are upscaled by an integer factor with nearest-neighbour sampling, so
// every source pixel stays a crisp square, and each tile gets a one-line
// caption drawn in the fixed 7x13 font of golang.org/x/image/font/basicfont.
package imagegrid

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Tile is one image of a grid.
type Tile struct {
	// Pixels holds height*width*channels bytes in HWC order: rows, then
	// columns, then channels (grey; RGB; or non-premultiplied RGBA, composited
	// over the background).
	Pixels []byte
	// Caption is drawn under the tile. Only printable ASCII has glyphs; other
	// runes show as '?', and captions longer than MaxCaption are cut.
	Caption string
	// Border, when not nil, colours a ring around the tile, e.g. to tell real
	// from generated images. Without it the ring is background.
	Border color.Color
}

// Layout of a grid, in output pixels.
const (
	gap    = 4 // background between cells and around the grid
	border = 2 // ring around each tile, coloured by Tile.Border
	capGap = 2 // between a tile's ring and its caption
)

// Limits on what Render accepts.
const (
	// MaxScale is the largest scale factor.
	MaxScale = 16
	// MaxCaption is the most runes of a caption that are drawn.
	MaxCaption = 32
	// MaxPixels bounds the output image, so that a bad size or scale is an
	// error rather than a multi-gigabyte allocation.
	MaxPixels = 1 << 26
)

var (
	face       = basicfont.Face7x13
	background = color.RGBA{0x30, 0x30, 0x30, 0xff}
	captionInk = image.NewUniform(color.White)
)

// Render draws tiles row by row, cols to a row (fewer when there are fewer
// tiles), each scaled by scale and captioned. Every tile must hold
// height*width*channels bytes; channels is 1, 3 or 4.
func Render(tiles []Tile, height, width, channels, cols, scale int) (*image.RGBA, error) {
	switch {
	case len(tiles) == 0:
		return nil, fmt.Errorf("imagegrid: no tiles to render")
	case height < 1 || width < 1:
		return nil, fmt.Errorf("imagegrid: image size %dx%d, want at least 1x1", height, width)
	case channels != 1 && channels != 3 && channels != 4:
		return nil, fmt.Errorf("imagegrid: %d channels, want 1 (grey), 3 (RGB) or 4 (RGBA)", channels)
	case cols < 1:
		return nil, fmt.Errorf("imagegrid: %d columns, want at least 1", cols)
	case scale < 1 || scale > MaxScale:
		return nil, fmt.Errorf("imagegrid: scale %d outside 1..%d", scale, MaxScale)
	}
	n := height * width * channels
	captions := make([]string, len(tiles))
	capChars := 0
	for i, t := range tiles {
		if len(t.Pixels) != n {
			return nil, fmt.Errorf("imagegrid: tile %d has %d bytes, want %d (%dx%dx%d)", i, len(t.Pixels), n, height, width, channels)
		}
		captions[i] = printable(t.Caption)
		capChars = max(capChars, len(captions[i]))
	}

	// A cell is the tile in its ring, centred over its caption; cells are as
	// wide as the widest caption so that no caption is clipped.
	tileW, tileH := width*scale, height*scale
	cellW := max(tileW+2*border, capChars*face.Advance)
	cellH := tileH + 2*border + capGap + face.Height
	cols = min(cols, len(tiles))
	rows := (len(tiles) + cols - 1) / cols
	outW, outH := gap+cols*(cellW+gap), gap+rows*(cellH+gap)
	if int64(outW)*int64(outH) > MaxPixels {
		return nil, fmt.Errorf("imagegrid: grid of %d tiles would be %dx%d pixels, more than %d; use a smaller scale or fewer tiles",
			len(tiles), outW, outH, MaxPixels)
	}

	img := image.NewRGBA(image.Rect(0, 0, outW, outH))
	fill(img, img.Rect, background)
	for i, t := range tiles {
		cx, cy := gap+(i%cols)*(cellW+gap), gap+(i/cols)*(cellH+gap)
		x0, y0 := cx+(cellW-tileW)/2, cy+border // the tile's top left corner
		if t.Border != nil {
			ring := image.Rect(x0-border, y0-border, x0+tileW+border, y0+tileH+border)
			draw.Draw(img, ring, image.NewUniform(t.Border), image.Point{}, draw.Over)
		}
		drawTile(img, t.Pixels, x0, y0, height, width, channels, scale)
		d := font.Drawer{
			Dst:  img,
			Src:  captionInk,
			Face: face,
			Dot:  fixed.P(cx+(cellW-len(captions[i])*face.Advance)/2, y0+tileH+border+capGap+face.Ascent),
		}
		d.DrawString(captions[i])
	}
	return img, nil
}

// WritePNG renders tiles as Render does and writes the grid to w as a PNG.
func WritePNG(w io.Writer, tiles []Tile, height, width, channels, cols, scale int) error {
	img, err := Render(tiles, height, width, channels, cols, scale)
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("imagegrid: encode PNG: %w", err)
	}
	return nil
}

// drawTile paints each source pixel as a scale x scale square at (x0, y0).
func drawTile(img *image.RGBA, pix []byte, x0, y0, height, width, channels, scale int) {
	for y := range height {
		for x := range width {
			p := pix[(y*width+x)*channels:]
			var c color.RGBA
			switch channels {
			case 1:
				c = color.RGBA{p[0], p[0], p[0], 0xff}
			case 3:
				c = color.RGBA{p[0], p[1], p[2], 0xff}
			case 4:
				c = color.RGBA{over(p[0], background.R, p[3]), over(p[1], background.G, p[3]), over(p[2], background.B, p[3]), 0xff}
			}
			sx, sy := x0+x*scale, y0+y*scale
			fill(img, image.Rect(sx, sy, sx+scale, sy+scale), c)
		}
	}
}

// over blends a source channel with alpha a onto an opaque background channel.
func over(src, bg, a uint8) uint8 {
	return uint8((int(src)*int(a) + int(bg)*(255-int(a)) + 127) / 255)
}

// fill paints r (clipped to img) with the opaque colour c.
func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			row[i], row[i+1], row[i+2], row[i+3] = c.R, c.G, c.B, c.A
		}
	}
}

// printable maps a caption onto the font's glyphs: printable ASCII is kept,
// any other rune becomes '?', and the result is cut to MaxCaption runes.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() == MaxCaption {
			break
		}
		if r < ' ' || r > '~' {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
