import CFFmpeg
import CMediaLoader
import CSndfile

/// The media libraries this build runs on. Only this module sees FFmpeg and libsndfile.
public enum MediaLibraries {
  /// Why FFmpeg or libsndfile cannot be opened (naming the Debian package), or nil when
  /// they are open. They are opened on the first media call; this opens them now.
  public static var loadError: String? { glassbox_media_load().map { String(cString: $0) } }

  /// Name and version of each library, in a fixed order (one line saying why where they
  /// cannot be opened).
  public static var versions: [(String, String)] {
    if let loadError { return [("media libraries", loadError)] }
    func ff(_ v: UInt32) -> String { "\(v >> 16).\((v >> 8) & 0xFF).\(v & 0xFF)" }
    return [
      ("libavformat", ff(avformat_version())),
      ("libavcodec", ff(avcodec_version())),
      ("libavutil", ff(avutil_version())),
      ("libswscale", ff(swscale_version())),
      ("libswresample", ff(swresample_version())),
      ("libsndfile", String(cString: sf_version_string())),
    ]
  }
}
