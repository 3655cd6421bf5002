import Foundation
import LoomBenchmarking
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomSampling
import LoomTraining

/// Drawing of `loom profile --timeline-svg`: the memory timeline as an SVG plot.
extension MemoryTimeline {
    /// An SVG plot: title, axes with MiB ticks on y and launch ticks on x, block spans shaded in
    /// alternating bands and labelled when wide enough, and a step line of bytes in use.
    func svg(width: Int = 960, height: Int = 420) -> String {
        let (left, right, top, bottom) = (72.0, 16.0, 40.0, 48.0)
        let w = max(Double(width), left + right + 10), h = max(Double(height), top + bottom + 10)
        let plotW = w - left - right, plotH = h - top - bottom
        let mib = 1048576.0
        let peakMiB = Double(peakBytes) / mib
        let yStep = MemoryTimelineSVG.niceStep(peakMiB > 0 ? peakMiB / 5 : 0.2)
        let yMax = max(yStep, (peakMiB / yStep).rounded(.up) * yStep)
        let firstLaunch = points.map(\.launch).min() ?? 0
        let lastLaunch = max((points.map(\.launch).max() ?? 0) + 1, firstLaunch + 1)
        func x(_ launch: Double) -> Double { left + (launch - Double(firstLaunch)) / Double(lastLaunch - firstLaunch) * plotW }
        func y(_ bytes: Double) -> Double { top + plotH - bytes / mib / yMax * plotH }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }

        var s: [String] = []
        s.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
                 + "viewBox=\"0 0 \(f(w)) \(f(h))\" font-family=\"sans-serif\" font-size=\"11\">")
        s.append("<title>\(MemoryTimelineSVG.escape(title))</title>")
        s.append("<rect x=\"0\" y=\"0\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"white\"/>")
        s.append("<text x=\"\(f(w / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">"
                 + "\(MemoryTimelineSVG.escape(title))</text>")
        // Block spans: a point at index i covers launches [launch_i, launch_{i+1}).
        for (k, span) in blockSpans.enumerated() {
            let x0 = x(Double(points[span.first].launch))
            let x1 = span.last + 1 < points.count ? x(Double(points[span.last + 1].launch)) : x(Double(lastLaunch))
            let fill = k % 2 == 0 ? "#e8eef8" : "#f6f6f6"
            s.append("<rect class=\"block\" x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(max(x1 - x0, 0)))\" "
                     + "height=\"\(f(plotH))\" fill=\"\(fill)\"><title>\(MemoryTimelineSVG.escape(span.block))</title></rect>")
            s.append("<line x1=\"\(f(x0))\" y1=\"\(f(top))\" x2=\"\(f(x0))\" y2=\"\(f(top + plotH))\" "
                     + "stroke=\"#b8c4d8\" stroke-width=\"0.5\"/>")
            let label = MemoryTimelineSVG.escape(span.block)
            if x1 - x0 >= Double(span.block.count) * 6.5 + 4 {
                s.append("<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(top + 12))\" text-anchor=\"middle\" "
                         + "fill=\"#4a5a78\" font-size=\"10\">\(label)</text>")
            } else if x1 - x0 >= 9 {
                s.append("<text transform=\"translate(\(f((x0 + x1) / 2 + 3)),\(f(top + 4))) rotate(90)\" "
                         + "fill=\"#4a5a78\" font-size=\"9\">\(label)</text>")
            }
        }
        // Y grid and MiB ticks.
        var tick = 0.0
        while tick <= yMax + yStep / 1000 {
            let ty = y(tick * mib)
            s.append("<line x1=\"\(f(left))\" y1=\"\(f(ty))\" x2=\"\(f(left + plotW))\" y2=\"\(f(ty))\" "
                     + "stroke=\"#dddddd\" stroke-width=\"0.5\"/>")
            s.append("<line x1=\"\(f(left - 4))\" y1=\"\(f(ty))\" x2=\"\(f(left))\" y2=\"\(f(ty))\" stroke=\"black\"/>")
            s.append("<text x=\"\(f(left - 7))\" y=\"\(f(ty + 4))\" text-anchor=\"end\">"
                     + "\(MemoryTimelineSVG.formatTick(tick, step: yStep))</text>")
            tick += yStep
        }
        // X ticks.
        let xStep = max(1, Int(MemoryTimelineSVG.niceStep(Double(lastLaunch - firstLaunch) / 8)))
        var launch = (firstLaunch / xStep) * xStep
        if launch < firstLaunch { launch += xStep }
        while launch <= lastLaunch {
            let tx = x(Double(launch))
            s.append("<line x1=\"\(f(tx))\" y1=\"\(f(top + plotH))\" x2=\"\(f(tx))\" y2=\"\(f(top + plotH + 4))\" stroke=\"black\"/>")
            s.append("<text x=\"\(f(tx))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(launch)</text>")
            launch += xStep
        }
        // Axes and their titles.
        s.append("<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>")
        s.append("<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>")
        s.append("<text x=\"\(f(left + plotW / 2))\" y=\"\(f(h - 10))\" text-anchor=\"middle\">kernel launch</text>")
        s.append("<text transform=\"translate(16,\(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">"
                 + "MiB in use</text>")
        // The step line: flat from each launch to the next, then a vertical step.
        var coords: [String] = []
        for (i, p) in points.enumerated() {
            let py = y(Double(p.bytes))
            coords.append("\(f(x(Double(p.launch)))),\(f(py))")
            let next = i + 1 < points.count ? points[i + 1].launch : lastLaunch
            coords.append("\(f(x(Double(next)))),\(f(py))")
        }
        if !coords.isEmpty {
            s.append("<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"\(coords.joined(separator: " "))\"/>")
        }
        s.append("<text x=\"\(f(left + plotW))\" y=\"\(f(top - 6))\" text-anchor=\"end\" fill=\"#c0392b\">"
                 + "peak \(String(format: "%.2f", peakMiB)) MiB</text>")
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }
}

/// Axis ticks and XML escaping of the timeline plot.
enum MemoryTimelineSVG {
    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2.0, 5.0, 10.0] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }

    static func formatTick(_ value: Double, step: Double) -> String {
        if step >= 1 { return String(format: "%.0f", value) }
        let digits = Int((-log10(step)).rounded(.up))
        return String(format: "%.\(digits)f", value)
    }

    /// XML text escaping.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
