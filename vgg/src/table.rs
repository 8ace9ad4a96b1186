//! The VGG19 layer table (Simonyan & Zisserman 2015, configuration E, convolutional part): the
//! single source of layer names, order and channel counts for the loader, the model, the
//! converter and the CLI.

/// One 3x3 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// `convB_C`: block B, convolution C.
    pub name: &'static str,
    pub in_channels: usize,
    pub out_channels: usize,
}

const fn conv(name: &'static str, in_channels: usize, out_channels: usize) -> ConvSpec {
    ConvSpec { name, in_channels, out_channels }
}

/// The 16 convolutions, in network order.
pub const CONVS: [ConvSpec; 16] = [
    conv("conv1_1", 3, 64),
    conv("conv1_2", 64, 64),
    conv("conv2_1", 64, 128),
    conv("conv2_2", 128, 128),
    conv("conv3_1", 128, 256),
    conv("conv3_2", 256, 256),
    conv("conv3_3", 256, 256),
    conv("conv3_4", 256, 256),
    conv("conv4_1", 256, 512),
    conv("conv4_2", 512, 512),
    conv("conv4_3", 512, 512),
    conv("conv4_4", 512, 512),
    conv("conv5_1", 512, 512),
    conv("conv5_2", 512, 512),
    conv("conv5_3", 512, 512),
    conv("conv5_4", 512, 512),
];

/// One step of the network. `index` is the position in [`CONVS`] of the convolution a conv or
/// ReLU step belongs to; `block` is 1..=5 for a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Conv { index: usize },
    Relu { index: usize },
    Pool { block: usize },
}

const RELU_NAMES: [&str; 16] = [
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4", "relu4_1", "relu4_2",
    "relu4_3", "relu4_4", "relu5_1", "relu5_2", "relu5_3", "relu5_4",
];
const POOL_NAMES: [&str; 5] = ["pool1", "pool2", "pool3", "pool4", "pool5"];

impl Layer {
    /// `conv3_1`, `relu3_1`, `pool3`, ...
    pub fn name(&self) -> &'static str {
        match *self {
            Layer::Conv { index } => CONVS[index].name,
            Layer::Relu { index } => RELU_NAMES[index],
            Layer::Pool { block } => POOL_NAMES[block - 1],
        }
    }
}

/// Every layer in network order: conv, ReLU for each convolution, and a max-pool closing each
/// of the five blocks (after conv1_2, conv2_2, conv3_4, conv4_4, conv5_4).
pub const LAYERS: [Layer; 37] = {
    let mut out = [Layer::Pool { block: 1 }; 37];
    let mut i = 0;
    let mut c = 0;
    while c < 16 {
        out[i] = Layer::Conv { index: c };
        out[i + 1] = Layer::Relu { index: c };
        i += 2;
        // Last convolution of each block: indices 1, 3, 7, 11, 15.
        if c == 1 || c == 3 || c == 7 || c == 11 || c == 15 {
            let block = match c {
                1 => 1,
                3 => 2,
                7 => 3,
                11 => 4,
                _ => 5,
            };
            out[i] = Layer::Pool { block };
            i += 1;
        }
        c += 1;
    }
    out
};

/// The position of the layer called `name` in [`LAYERS`].
pub fn layer_index(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.name() == name)
}

/// Every layer name, in network order.
pub fn layer_names() -> impl Iterator<Item = &'static str> {
    LAYERS.iter().map(Layer::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_vgg19() {
        let names: Vec<&str> = layer_names().collect();
        assert_eq!(names.len(), 37);
        assert_eq!(&names[..6], ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1"]);
        assert_eq!(names[names.len() - 1], "pool5");
        assert_eq!(layer_index("relu5_1"), Some(29));
        assert_eq!(layer_index("relu4_2"), Some(22));
        assert_eq!(layer_index("conv9_9"), None);
        // Channels chain: each conv takes the previous one's output.
        for w in CONVS.windows(2) {
            assert_eq!(w[0].out_channels, w[1].in_channels);
        }
    }
}
