//! QR codes as PNG images: what `whatsapp:qr` and `qr.png` carry.

use base64::Engine;

/// A PNG whose QR code encodes exactly `text`.
pub fn png(text: &str) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("WhatsApp QR strings fit a QR code");
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding into memory does not fail");
    out.into_inner()
}

/// `data:image/png;base64,…`
pub fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_png_decodes_to_the_exact_string() {
        let text = "2@AbC+/xyz,bm9pc2U=,aWRlbnRpdHk=,YWR2c2VjcmV0,CHROME";
        let png = super::png(text);
        let image = image::load_from_memory(&png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(image);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, text);
        assert!(super::data_url(&png).starts_with("data:image/png;base64,iVBOR"));
    }
}
