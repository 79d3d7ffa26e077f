package main

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"slices"
	"strings"
)

// The plots are drawn with image/png and a built-in 5x7 bitmap font, so the
// benchmark needs no plotting module (the repository's go.mod is not the
// benchmark's to change).

var (
	colWhite = color.RGBA{255, 255, 255, 255}
	colBlack = color.RGBA{30, 30, 30, 255}
	colGrid  = color.RGBA{225, 225, 225, 255}
	colGrid2 = color.RGBA{242, 242, 242, 255}
	// One colour per path, in measurement order.
	pathColours = map[string]color.RGBA{
		pathDirect:  {120, 120, 120, 255},
		pathBowline: {31, 119, 180, 255},
		pathNginx:   {44, 160, 44, 255},
		pathHAProxy: {255, 127, 14, 255},
	}
)

// plot draws the latency percentiles of every path for proto: one panel
// per connection count, one group of bars per percentile, log-scale y axis
// in milliseconds.
func (r *report) plot(proto, file string) error {
	var conns []int
	var paths []string
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range r.Points {
		if p.Mode != "latency" || p.Protocol != proto || len(p.Latency) == 0 || (p.Error != "" && p.AddedMs == nil && p.Path != pathDirect) {
			continue
		}
		if !slices.Contains(conns, p.Conns) {
			conns = append(conns, p.Conns)
		}
		if !slices.Contains(paths, p.Path) {
			paths = append(paths, p.Path)
		}
		for _, v := range p.Latency {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if len(conns) == 0 {
		return errors.New("no latency points")
	}
	decLo, decHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if decHi <= decLo {
		decHi = decLo + 1
	}
	const (
		panelW, plotH          = 330, 360
		left, top, bottom, gap = 80, 70, 90, 20
		scale                  = 2
	)
	name := map[string]string{protoHTTP: "HTTP/1.1", protoGRPC: "gRPC"}[proto]
	title := fmt.Sprintf("%s latency, ms (log), 1000 qps", name)
	legendW := 0
	for _, pn := range paths {
		legendW += 56 + textWidth(pn, scale)
	}
	w := max(left+len(conns)*(panelW+gap)+10, 20+textWidth(title, scale), left+legendW)
	h := top + plotH + bottom
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colWhite}, image.Point{}, draw.Src)
	drawText(img, 10, 12, title, scale, colBlack)
	yOf := func(v float64) int {
		f := (math.Log10(v) - decLo) / (decHi - decLo)
		return top + plotH - int(f*float64(plotH))
	}
	// Grid and y labels.
	for d := decLo; d <= decHi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == decHi && m > 1 {
				continue
			}
			y := yOf(v)
			c := colGrid2
			if m == 1 {
				c = colGrid
				label := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
				drawText(img, left-8-textWidth(label, scale), y-7, label, scale, colBlack)
			}
			fill(img, left, y, w-10, y+1, c)
		}
	}
	fill(img, left, top, left+1, top+plotH, colBlack)
	fill(img, left, top+plotH, w-10, top+plotH+1, colBlack)
	for ci, c := range conns {
		x0 := left + gap/2 + ci*(panelW+gap)
		label := fmt.Sprintf("%d connections", c)
		drawText(img, x0+(panelW-textWidth(label, scale))/2, top-24, label, scale, colBlack)
		groupW := panelW / len(percentiles)
		barW := max((groupW-14)/max(len(paths), 1), 2)
		for gi, pc := range percentiles {
			gx := x0 + gi*groupW + 7
			for pi, pn := range paths {
				pt := r.find(pn, proto, "latency", c)
				if pt == nil || pt.Latency[pc.key] <= 0 {
					continue
				}
				y := max(yOf(pt.Latency[pc.key]), top)
				fill(img, gx+pi*barW, y, gx+(pi+1)*barW-1, top+plotH, pathColours[pn])
			}
			lx := gx + (len(paths)*barW-textWidth(pc.key, scale))/2
			drawText(img, lx, top+plotH+8, pc.key, scale, colBlack)
		}
	}
	// Legend.
	lx := left
	for _, pn := range paths {
		fill(img, lx, h-40, lx+18, h-22, pathColours[pn])
		drawText(img, lx+26, h-38, pn, scale, colBlack)
		lx += 26 + textWidth(pn, scale) + 30
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), &image.Uniform{c}, image.Point{}, draw.Src)
}

// textWidth is the width in pixels of s drawn at scale.
func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// drawText draws s with its top-left corner at (x, y).
func drawText(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g, ok := glyphs[ch]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col := range 5 {
				if bits&(0x10>>col) != 0 {
					fill(img, x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale, c)
				}
			}
		}
		x += 6 * scale
	}
}

// glyphs is a 5x7 font (rows top to bottom, bit 4 = leftmost column);
// lower case is drawn as upper case.
var glyphs = map[rune][7]uint8{
	' ': {}, '?': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, 'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, 'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, 'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, 'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, 'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, 'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, 'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, 'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, 'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, ',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}, '-': {0, 0, 0, 0x1F, 0, 0, 0},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}, '/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, ')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'_': {0, 0, 0, 0, 0, 0, 0x1F},
}
